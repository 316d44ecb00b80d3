// Every main page of the dashboard at a phone's width (390 × 844, as an iPhone 14 reports
// it): signed in, each page (CRIER_TEST_PAGES, space-separated paths) must fit the screen
// (nothing wider than the viewport except inside a scrolling table), every visible form
// control must have a label, and a full-page screenshot of each is kept. Run by
// tests/dashboard_browser.rs.
export default async function ({ page, baseUrl, screenshot, env }) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${baseUrl}/login`);
  await page.getByLabel("Email").fill(env("CRIER_TEST_EMAIL"));
  await page.getByLabel("Password").fill(env("CRIER_TEST_PASSWORD"));
  await screenshot("phone-login", { fullPage: true });
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/app\//);
  const pages = [];
  for (const path of env("CRIER_TEST_PAGES").split(" ")) {
    const response = await page.goto(`${baseUrl}${path}`);
    const facts = await page.evaluate(() => {
      const width = window.innerWidth;
      // What sticks out: elements wider than the viewport that are not inside a scrolling
      // table wrapper (which scrolls on its own, as tables do on phones).
      const overflowing = [...document.querySelectorAll("body *")]
        .filter((el) => !(el.parentElement && el.parentElement.closest(".table-wrap")))
        .filter((el) => el.getBoundingClientRect().right > width + 1)
        .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className ? "." + String(el.className).split(" ").join(".") : ""))
        .slice(0, 5);
      const unlabelled = [...document.querySelectorAll("input, select, textarea")]
        .filter((el) => el.type !== "hidden" && el.offsetParent !== null)
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
        .map((el) => el.tagName.toLowerCase() + (el.name ? "[name=" + el.name + "]" : "") + (el.id ? "#" + el.id : ""));
      return {
        page_width: document.documentElement.scrollWidth,
        viewport: width,
        overflowing,
        unlabelled,
        title: document.title,
      };
    });
    const name = "phone" + path.replace(/[^a-z0-9]+/gi, "-").replace(/-$/, "");
    await screenshot(name, { fullPage: true });
    pages.push({ path, status: response.status(), ...facts });
  }
  return { pages };
}
