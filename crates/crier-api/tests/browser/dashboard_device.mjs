// Approving the CLI's device login in a real browser: the verification link sends a signed-out
// user to sign in and back, the page shows the client's name and scopes, and the user approves.
// Run by tests/dashboard_browser.rs, which starts the login and polls for its key.
export default async function ({ page, baseUrl, screenshot, env }) {
  const code = env("CRIER_TEST_USER_CODE");
  await page.goto(env("CRIER_TEST_VERIFICATION_URI"));
  await page.waitForURL(/\/login/);
  await page.getByLabel("Email").fill(env("CRIER_TEST_EMAIL"));
  await page.getByLabel("Password").fill(env("CRIER_TEST_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/device/);
  // The code is typed by the person, as the CLI printed it.
  await page.getByLabel("The code your device shows").fill(code.toLowerCase().replace("-", " "));
  await page.getByRole("button", { name: "Continue" }).click();
  const client = (await page.locator(".client").innerText()).trim();
  const scopes = await page.locator(".scope-list li").allInnerTexts();
  const shownCode = (await page.locator("strong.code").innerText()).trim();
  await screenshot("device-ask", { fullPage: true });
  await page.getByRole("button", { name: "Approve" }).click();
  const done = (await page.locator(".notice").innerText()).trim();
  await screenshot("device-approved", { fullPage: true });
  return { client, scopes, code: shownCode, done };
}
