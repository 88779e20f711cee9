// Opens browser/index.html, served from its own port, in headless Chromium (Debian's, through
// playwright-core: no browser download) and checks what the page could do with the dev server
// at API_URL: a cross-origin app on another localhost port, as a developer would run one.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

const root = new URL("..", import.meta.url).pathname;
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript" };
const server = createServer(async (req, res) => {
  const path = normalize(new URL(req.url, "http://x").pathname).replace(/^\/+/, "");
  const file = join(root, path === "" ? "browser/index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const page_url = `http://127.0.0.1:${server.address().port}/browser/index.html`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const seen = [];
  page.on("console", (m) => seen.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => seen.push(`page error: ${e}`));
  page.on("requestfailed", (r) => seen.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  const phone = `55${Math.floor(1e7 + Math.random() * 9e7)}`;
  const api = process.env.API_URL.replace("127.0.0.1", "localhost");
  await page.goto(`${page_url}?api=${encodeURIComponent(api)}&phone=${phone}`);
  await page
    .waitForFunction(() => document.querySelector("#status").textContent !== "running", null, {
      timeout: 20000,
    })
    .catch((e) => {
      throw new Error(`${e.message}\n${seen.join("\n")}`);
    });
  const status = await page.textContent("#status");
  assert.equal(status, "done", status);
  assert.equal(await page.textContent("#name"), "Ada Lovelace");
  assert.equal(await page.textContent("#problem"), "400 validation_failed /last_name");
  console.log(`ok - a page on ${new URL(page_url).origin} signed up, logged in and read a problem from ${api}`);
} finally {
  await browser.close();
  server.close();
}
