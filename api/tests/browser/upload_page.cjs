// Drives the upload page in Debian's headless Chromium (playwright-core, no downloaded browser).
// Usage: node upload_page.cjs BASE_URL PICTURE NOT_A_PICTURE SCREENSHOT API_KEY
// Prints one JSON line with what the page showed; exits non-zero on any failure.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [base, picture, notPicture, screenshot, key] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30000);
    await page.goto(base + "/");

    // Without a key: the page says a key is needed.
    await page.setInputFiles("#file", picture);
    await page.click("#upload");
    await page.waitForSelector("#error:not([hidden])");
    const keyless = await page.textContent("#error");

    // The key, typed once, is remembered across a reload.
    await page.fill("#key", key);
    await page.dispatchEvent("#key", "change");
    await page.reload();
    const remembered = (await page.inputValue("#key")) === key;

    // A file that is not a picture: the page says so in words.
    await page.setInputFiles("#file", notPicture);
    await page.click("#upload");
    await page.waitForSelector("#error:not([hidden])");
    const refused = await page.textContent("#error");

    // A picture: job id, status, then the thumbnail.
    await page.setInputFiles("#file", picture);
    await page.click("#upload");
    await page.waitForFunction(() => {
      const img = document.getElementById("thumbnail");
      return !img.hidden && img.complete && img.naturalWidth > 0;
    });
    const shown = await page.evaluate(() => ({
      job: document.getElementById("job-id").textContent,
      status: document.getElementById("status").textContent,
      error_hidden: document.getElementById("error").hidden,
      width: document.getElementById("thumbnail").naturalWidth,
      height: document.getElementById("thumbnail").naturalHeight,
    }));
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ keyless, remembered, refused, ...shown }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
