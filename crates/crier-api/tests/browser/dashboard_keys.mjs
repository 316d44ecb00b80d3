// The developer's first journey in the dashboard, in a real browser: sign up as the install's
// first user, make a key with chosen scopes, see it once, call the API with it from the "Try
// it" console, revoke it, and see the same call refused. Run by tests/dashboard_browser.rs.
export default async function ({ page, baseUrl, screenshot, env }) {
  const email = env("CRIER_TEST_EMAIL");
  const password = env("CRIER_TEST_PASSWORD");
  // Every request the pages make, with the Authorization header it carried (to check where a
  // key went).
  const sent = [];
  page.on("request", (r) => {
    const auth = r.headers()["authorization"];
    if (auth) sent.push({ url: r.url(), authorization: auth });
  });

  await page.goto(`${baseUrl}/`);
  const landed = new URL(page.url()).pathname;
  await page.getByLabel("Your name").fill("Ada Lovelace");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Workspace name").fill("Analytical Engines");
  await screenshot("signup");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(`${baseUrl}/app/keys`);
  await screenshot("keys-empty", { fullPage: true });

  // A key with two chosen scopes.
  await page.getByLabel("Name", { exact: true }).fill("Reporting bot");
  await page.getByLabel("Access").selectOption("custom");
  await page.getByLabel("posts:read").check();
  await page.getByLabel("accounts:read").check();
  await page.getByLabel("Expires after (days)").fill("30");
  await page.getByRole("button", { name: "Create key" }).click();
  const shown = page.locator("#new-key");
  await shown.waitFor();
  const key = await shown.inputValue();
  const warning = await page.locator("#created .warn").innerText();
  await page.getByRole("button", { name: "Copy" }).click();
  await page.locator("#created .copied").filter({ hasText: "Copied." }).waitFor();
  await screenshot("key-shown-once", { fullPage: true });
  const row = page.locator("tr[data-key-id]").filter({ hasText: "Reporting bot" });
  const listed = {
    scopes: (await row.locator("td.scopes").innerText()).trim(),
    status: (await row.locator(".badge").innerText()).trim(),
  };

  // Shown once: a fresh load of the page does not have it.
  await page.goto(`${baseUrl}/app/keys`);
  const shownAgain = (await page.content()).includes(key);

  // The "Try it" console with the key.
  const tryIt = async (step) => {
    await page.goto(`${baseUrl}/app/try`);
    await page.getByLabel("API key").fill(key);
    await page.getByLabel("Request").selectOption("/v1/posts");
    await page.getByRole("button", { name: "Send" }).click();
    const status = page.locator("#try-status");
    await status.filter({ hasText: /^\d{3} / }).waitFor();
    await screenshot(step, { fullPage: true });
    return {
      status: (await status.innerText()).trim(),
      output: await page.locator("#try-output").innerText(),
    };
  };
  const before = await tryIt("try-it-ok");

  // Revoke, confirming the dialog.
  await page.goto(`${baseUrl}/app/keys`);
  page.once("dialog", (d) => d.accept());
  await page
    .locator("tr[data-key-id]")
    .filter({ hasText: "Reporting bot" })
    .getByRole("button", { name: "Revoke" })
    .click();
  const badge = page.locator("tr[data-key-id]").filter({ hasText: "Reporting bot" }).locator(".badge");
  await badge.filter({ hasText: "revoked" }).waitFor();
  const revokedStatus = (await badge.innerText()).trim();
  await screenshot("key-revoked", { fullPage: true });
  const after = await tryIt("try-it-revoked");

  // The key is kept nowhere in the browser.
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  const cookies = await page.context().cookies();

  return {
    landed,
    key,
    warning,
    listed,
    shown_again: shownAgain,
    before,
    revoked_status: revokedStatus,
    after,
    sent,
    key_in_storage: stored.includes(key) || cookies.some((c) => c.value.includes(key)),
    cookies: cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite })),
  };
}
