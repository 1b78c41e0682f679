// The web chat page in a real headless Chromium: two signed-in users and a
// guest in one room see each other's messages and presence.
// Run: PARLEY_BIN=../../target/debug/parley node --test   (from this folder)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const binary = process.env.PARLEY_BIN ?? new URL("../../target/debug/parley", import.meta.url).pathname;
let server, base, browser;
const dataDir = mkdtempSync(join(tmpdir(), "parley-browser-"));

before(async () => {
  server = spawn(binary, [], {
    env: { ...process.env, PARLEY_DATA_DIR: dataDir, PORT: "0", NO_COLOR: "1", ARGON2_MEMORY_KIB: "64", ARGON2_ITERATIONS: "1", RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  base = await new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`parley did not start:\n${seen}`)), 20000);
    server.stdout.on("data", (chunk) => {
      seen += chunk;
      const found = seen.match(/listening on (http:\/\/[0-9.:]+)/);
      if (found) { clearTimeout(timer); resolve(found[1]); }
    });
    server.on("exit", (code) => reject(new Error(`parley exited with ${code}:\n${seen}`)));
  });
  for (const name of ["ann", "bob"]) {
    const response = await fetch(`${base}/api/v1/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: `${name}@example.com`, username: name, password: "correct horse" }),
    });
    assert.equal(response.status, 201);
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
           "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
});

// A new page whose script errors, failed or external requests and
// Content-Security-Policy violations are collected in `problems`.
async function watchedPage() {
  const page = await (await browser.newContext()).newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("requestfailed", (request) => problems.push(`failed: ${request.url()}`));
  page.on("request", (request) => { if (!request.url().startsWith(base.replace("http", "ws")) && !request.url().startsWith(base) && !request.url().startsWith(`blob:${base}`)) problems.push(`external: ${request.url()}`); });
  // Chromium asks every page for /favicon.ico, which Parley does not have.
  page.on("console", (message) => { if (message.type() === "error" && !message.location().url.endsWith("/favicon.ico")) problems.push(`console: ${message.text()} (${message.location().url})`); });
  await page.addInitScript(() => document.addEventListener("securitypolicyviolation", (event) => {
    console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
  }));
  return { page, problems };
}

async function signIn(name, room) {
  const { page, problems } = await watchedPage();
  await page.goto(`${base}/chat`);
  await page.fill("#login-username", name);
  await page.fill("#login-password", "correct horse");
  await page.click("#login-button");
  await page.waitForFunction((who) => document.getElementById("status").textContent.includes(`signed in as ${who}`), name);
  await page.fill("#room", room);
  await page.click("#join");
  await page.waitForFunction(() => !document.getElementById("text").disabled);
  return { page, problems };
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

const lines = (page) => page.$$eval("#messages li", (items) => items.map((item) => item.textContent));
const names = (page) => page.$$eval("#members li", (items) => items.map((item) => item.textContent));

async function waitForLine(page, text) {
  await page.waitForFunction((wanted) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent === wanted), text, { timeout: 10000 });
}

test("two signed-in users and a guest in one room see each other", async () => {
  const ann = await signIn("ann", "lobby");
  const bob = await signIn("bob", "lobby");
  await waitForLine(ann.page, "🔵 bob joined the room.");

  await say(ann.page, "hello from ann");
  await waitForLine(bob.page, "ann: hello from ann");
  await say(bob.page, "hi ann, bob here");
  await waitForLine(ann.page, "bob: hi ann, bob here");
  await ann.page.waitForFunction(() => document.querySelectorAll("#members li").length === 2);
  assert.deepEqual(await names(ann.page), ["ann", "bob"]);
  assert.deepEqual(await names(bob.page), ["ann", "bob"]);

  // A guest uses the original protocol, and gets the history over REST.
  const { page: guest, problems: guestProblems } = await watchedPage();
  await guest.goto(`${base}/chat`);
  await guest.fill("#guest-name", "visitor");
  await guest.fill("#room", "lobby");
  await guest.click("#join");
  await waitForLine(guest, "🔵 visitor joined the room.");
  assert.ok((await lines(guest)).includes("ann: hello from ann"), "the guest sees what was said before");
  await say(guest, "a guest says hi");
  // Signed-in members see that the name is a guest's: anyone may use it.
  await waitForLine(ann.page, "🔵 visitor (guest) joined the room.");
  await waitForLine(ann.page, "visitor (guest): a guest says hi");
  await waitForLine(bob.page, "visitor (guest): a guest says hi");
  assert.ok((await lines(ann.page)).includes("ann: hello from ann"), "a registered member's name is not marked");

  // Text is shown as text, never as markup.
  await say(bob.page, "<img src=x onerror=alert(1)>");
  await waitForLine(ann.page, "bob: <img src=x onerror=alert(1)>");
  assert.equal(await ann.page.$$eval("#messages img", (found) => found.length), 0);

  await bob.page.click("#leave");
  await waitForLine(ann.page, "🔴 bob left the room.");
  await ann.page.waitForFunction(() => document.querySelectorAll("#members li").length === 2);
  assert.deepEqual(await names(ann.page), ["ann", "visitor"]);
  assert.deepEqual([...ann.problems, ...bob.problems, ...guestProblems], [], "no script errors, failed or external requests, no CSP violation");
});

test("a member with two tabs stays listed when one of them leaves", async () => {
  const first = await signIn("bob", "tabs");
  const second = await signIn("bob", "tabs");
  const ann = await signIn("ann", "tabs");
  await ann.page.waitForFunction(() => document.querySelectorAll("#members li").length === 2);
  await second.page.click("#leave");
  await waitForLine(ann.page, "🔴 bob left the room.");
  // Counting alone would now hide bob; the page checks with the server.
  await ann.page.waitForFunction(() => [...document.querySelectorAll("#members li")].some((li) => li.textContent === "bob"), null, { timeout: 5000 });
  assert.deepEqual(await names(ann.page), ["ann", "bob"]);
  assert.deepEqual([...ann.problems, ...first.problems, ...second.problems], [], "no script errors, failed or external requests, no CSP violation");
});

test("the chat page and the API documentation work under their Content-Security-Policy", async () => {
  for (const [path, rendered] of [
    ["/chat", () => document.getElementById("join") !== null],
    ["/docs", () => [...document.querySelectorAll(".swagger-ui .opblock-summary-path")].some((op) => op.textContent.includes("/api/v1/users/me"))],
    ["/redoc", () => [...document.querySelectorAll("h2")].some((h) => h.textContent.includes("The caller"))],
  ]) {
    const { page, problems } = await watchedPage();
    const response = await page.goto(`${base}${path}`);
    assert.match(response.headers()["content-security-policy"], /default-src 'none'/, path);
    await page.waitForFunction(rendered, null, { timeout: 15000 });
    if (path === "/docs") {
      // "Try it out" calls the API from the page: connect-src must allow it.
      await page.click(".opblock-summary-path[data-path='/healthz']");
      await page.click(".opblock.is-open .try-out__btn");
      await page.click(".opblock.is-open .execute");
      await page.waitForFunction(() => document.querySelector(".live-responses-table .response .response-col_status")?.textContent.trim() === "200", null, { timeout: 10000 });
    }
    assert.deepEqual(problems, [], `${path}: no script errors, failed or external requests, no CSP violation`);
    await page.context().close();
  }
});
