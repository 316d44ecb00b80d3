// Posting from the dashboard, in a real browser: sign in, connect a sandbox account, write a
// post too long for it (the counter and the server's preflight say so), shorten it, upload an
// image (CRIER_TEST_IMAGE) with its progress bar, and publish it now. With CRIER_TEST_POST set instead, sign in, open that post, and retry its
// failed networks. Run by tests/dashboard_browser.rs, which runs the publisher between steps.
export default async function ({ page, baseUrl, screenshot, env }) {
  await page.goto(`${baseUrl}/app/posts`);
  await page.waitForURL(/\/login/);
  await page.getByLabel("Email").fill(env("CRIER_TEST_EMAIL"));
  await page.getByLabel("Password").fill(env("CRIER_TEST_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${baseUrl}/app/posts`);

  const retry = process.env.CRIER_TEST_POST;
  if (retry) {
    await page.goto(`${baseUrl}/app/posts/${retry}`);
    const before = (await page.locator("#post-status").innerText()).trim();
    const error = (await page.locator(".error-text").first().innerText()).trim();
    await screenshot("post-failed", { fullPage: true });
    await page.getByRole("button", { name: "Retry failed networks" }).click();
    await page.locator("#post-status").filter({ hasNotText: before }).waitFor();
    const after = (await page.locator("#post-status").innerText()).trim();
    await screenshot("post-retried", { fullPage: true });
    return { before, error, after };
  }

  const handle = env("CRIER_TEST_HANDLE");
  await page.goto(`${baseUrl}/app/accounts`);
  await page.getByLabel("Handle", { exact: true }).fill(handle);
  await page.getByRole("button", { name: "Connect sandbox" }).click();
  const account = page.locator("tr[data-account-id]").filter({ hasText: handle });
  await account.waitFor();
  const accountStatus = (await account.locator(".badge").innerText()).trim();
  await screenshot("accounts", { fullPage: true });

  await page.goto(`${baseUrl}/app/posts/new`);
  await page.getByLabel(`${handle} (sandbox)`).check();
  const long = "Our spring collection is here. ".repeat(11);
  await page.getByLabel("Text", { exact: true }).fill(long);
  const counter = page.locator('#counters li[data-platform="sandbox"]');
  await counter.waitFor();
  const overCounter = { text: (await counter.innerText()).trim(), over: await counter.evaluate((li) => li.classList.contains("over")) };
  const problem = page.locator("#preflight .alert");
  await problem.waitFor();
  const preflight = { text: (await problem.innerText()).trim(), rules: await problem.getAttribute("data-rules") };
  await screenshot("compose-too-long", { fullPage: true });

  await page.getByLabel("Text", { exact: true }).fill("Our spring collection is here.");
  await page.locator("#preflight .notice").waitFor();
  const fitCounter = (await counter.innerText()).trim();

  // The image: its bytes go straight to the signed upload URL, with a progress bar.
  const bars = [];
  await page.exposeFunction("crierProgress", (v) => bars.push(v));
  await page.evaluate(() => {
    new MutationObserver((changes) => {
      for (const c of changes) if (c.target.tagName === "PROGRESS") window.crierProgress(c.target.value);
    }).observe(document.getElementById("uploads"), { subtree: true, attributes: true, attributeFilter: ["value"] });
  });
  await page.getByLabel("Upload images or a video").setInputFiles(env("CRIER_TEST_IMAGE"));
  const row = page.locator("#uploads li").first();
  await page.locator("#uploads li[data-media-id], #uploads li.failed").first().waitFor();
  const attachedBox = page.locator("#media-list input[name=media_id]").last();
  const upload = {
    state: (await row.locator(".upload-state").innerText()).trim(),
    progress: await row.locator("progress").evaluate((p) => p.value),
    media_id: await row.getAttribute("data-media-id"),
    attached: await attachedBox.isChecked(),
    progress_seen: bars.length,
  };
  await page.locator("#preflight .notice").waitFor();
  await screenshot("compose-with-image", { fullPage: true });
  await page.getByLabel("Publish now").check();
  await screenshot("compose-ready", { fullPage: true });
  await page.getByRole("button", { name: "Save" }).click();
  await page.waitForURL(/\/app\/posts\/post_/);
  const postId = new URL(page.url()).pathname.split("/").pop();
  const status = (await page.locator("#post-status").innerText()).trim();
  await screenshot("post-publishing", { fullPage: true });
  return { account_status: accountStatus, over_counter: overCounter, preflight, fit_counter: fitCounter, upload, post_id: postId, status };
}
