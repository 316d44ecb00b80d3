// The API reference at /docs (Swagger UI, served from the binary) in a real browser: it loads
// /v1/openapi.json from the same server, renders the title and every operation, and an
// operation opens to show its parameters and "Try it out". Run by tests/docs_browser.rs.
export default async function ({ page, baseUrl, screenshot }) {
  const spec = page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/openapi.json");
  const response = await page.goto(`${baseUrl}/docs`);
  const specResponse = await spec;
  const ui = page.locator(".swagger-ui");
  await ui.locator(".info .title").waitFor();
  await ui.locator(".opblock").first().waitFor();
  const title = (await ui.locator(".info .title").innerText()).trim();
  const operations = await ui.locator(".opblock").evaluateAll((blocks) =>
    blocks.map((b) => ({
      method: b.querySelector(".opblock-summary-method")?.textContent.trim(),
      path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path"),
    })),
  );
  await screenshot("loaded");

  // Open GET /v1/posts: its parameters and the "Try it out" button appear.
  const listPosts = ui.locator(".opblock-get").filter({
    has: page.locator('.opblock-summary-path[data-path="/v1/posts"]'),
  });
  await listPosts.locator(".opblock-summary-control").click();
  await listPosts.locator(".try-out__btn").waitFor();
  const parameters = await listPosts.locator(".parameters .parameter__name").allInnerTexts();
  await listPosts.scrollIntoViewIfNeeded();
  await screenshot("list-posts-open");

  return {
    status: response.status(),
    url: page.url(),
    spec_status: specResponse.status(),
    document_title: await page.title(),
    title,
    operations,
    list_posts_parameters: parameters.map((p) => p.replace(/\s+/g, " ").trim()),
  };
}
