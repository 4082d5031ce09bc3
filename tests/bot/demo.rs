//! `rerun-bot demo` in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), clicks through the page as a visitor would. Every click is
//! a signed request from the simulated Slack to the real bot.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them);
//! without `chromedriver` this test fails and says so.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use rerun_bot::demo::{Demo, DemoOptions, Pace};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// chromedriver, stopped when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> ChromeDriver {
    let Some(path) = on_path("chromedriver") else {
        panic!(
            "chromedriver is not installed: this test drives headless Chromium. Install it with \
             `apt-get install -y --no-install-recommends chromium chromium-driver` (.ci/run does)"
        );
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = ChromeDriver { child, port };
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    driver
}

struct Page {
    c: Client,
    shots: Option<PathBuf>,
}

impl Page {
    /// Polls `js` (an expression) until it is truthy; returns its value.
    async fn until(&self, what: &str, js: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        let script = format!("return ({js}) || null;");
        loop {
            match self.c.execute(&script, vec![]).await {
                Ok(v) if !v.is_null() && v != json!(false) => return v,
                Ok(_) => {}
                Err(e) => panic!("script for {what:?} failed: {e}"),
            }
            if Instant::now() > deadline {
                let body = self
                    .c
                    .execute("return document.body.innerText", vec![])
                    .await
                    .unwrap_or_default();
                panic!(
                    "timed out after {WAIT:?} waiting for {what}; errors: {:?}; page:\n{}",
                    self.errors().await,
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Clicks `css` once it is there (the page redraws; a stale node is found again).
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let clicked = match self.c.find(Locator::Css(css)).await {
                Ok(el) => el.click().await.is_ok(),
                Err(_) => false,
            };
            if clicked {
                return;
            }
            assert!(Instant::now() < deadline, "nothing to click at {css}");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no input at {css}: {e}"));
        el.send_keys(text).await.expect("typing works");
    }

    async fn act_as(&self, user: &str) {
        let select = self
            .c
            .find(Locator::Css("#user"))
            .await
            .expect("user switcher");
        select.select_by_value(user).await.expect("user switch");
        self.until(
            &format!("the page drawn for {user}"),
            &format!("document.body.dataset.user === '{user}'"),
        )
        .await;
    }

    /// Types a slash command into the composer and sends it.
    async fn command(&self, text: &str) {
        self.type_into("#command", text).await;
        self.click("#composer .send").await;
    }

    async fn errors(&self) -> Vec<String> {
        self.c
            .execute("return window.__demoErrors || ['no error hook']", vec![])
            .await
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            let png = self.c.screenshot().await.expect("screenshot");
            std::fs::create_dir_all(dir).expect("screenshot dir");
            std::fs::write(dir.join(name), png).expect("screenshot written");
        }
    }
}

/// The text of the top-level message `key` (its own blocks, not its thread).
fn own_text(key: &str) -> String {
    format!(
        "(document.querySelector('#messages > .msg[data-key=\"{key}\"] > .body > .blocks') || {{}}).innerText || ''"
    )
}

/// chromedriver, a demo at fast pace and a headless Chromium session on it.
async fn session() -> (ChromeDriver, Demo, Page, tempfile::TempDir) {
    let driver = chromedriver().await;
    let demo = Demo::start(DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        pace: Pace::fast(),
    })
    .await
    .expect("demo starts");

    let profile = tempfile::tempdir().expect("temp dir");
    let mut chrome = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", "--window-size=1400,1000",
        format!("--user-data-dir={}", profile.path().display()),
    ]});
    if let Some(binary) = on_path("chromium") {
        chrome["binary"] = json!(binary);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), chrome);
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session");
    let page = Page {
        c,
        shots: std::env::var_os("RERUN_BOT_SCREENSHOTS").map(PathBuf::from),
    };
    (driver, demo, page, profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_in_a_real_browser_rerun_four_eyes_and_hold_all() {
    let started = Instant::now();
    let (driver, demo, page, _profile) = session().await;
    page.c
        .goto(&format!("{}?user=U_ALICE", demo.url()))
        .await
        .expect("page loads");

    // Alice: the billing-sync alert, Rerun, a form that wants a reason.
    let alert = page
        .until(
            "the billing-sync alert with its log",
            "[...document.querySelectorAll('#messages > .msg')].filter(m => \
               (m.querySelector('.blk-header') || {}).textContent?.includes('billing/billing-sync failed') \
               && m.querySelector('pre')?.textContent.includes('UndefinedTable')) \
             .map(m => m.dataset.key)[0]",
        )
        .await;
    let alert = alert.as_str().unwrap().to_string();
    page.until(
        "the report-gen OOM alert",
        "document.querySelector('#messages').innerText.includes('OOMKilled')",
    )
    .await;
    page.shot("alert.png").await;
    page.click(&format!(
        "#messages > .msg[data-key=\"{alert}\"] > .body > .blocks button[data-action-id=\"rerun\"]"
    ))
    .await;
    page.until(
        "the rerun form",
        "document.querySelector('.modal[data-callback-id=\"rerun_reason\"]')",
    )
    .await;
    page.click(".modal [data-role=submit]").await;
    page.until(
        "the form's error under the reason",
        "document.querySelector('[data-error-for=\"reason\"]')?.textContent.length > 0",
    )
    .await;
    page.type_into(
        "[data-input=reason] textarea, [data-input=reason] input",
        "ledger table was missing; migration ran",
    )
    .await;
    page.type_into(
        "[data-input=ticket] textarea, [data-input=ticket] input",
        "INC-4711",
    )
    .await;
    page.click(".modal [data-role=submit]").await;
    page.until("the form closed", "!document.querySelector('.modal')")
        .await;

    // The approval card in the alert's thread; Alice may not approve it.
    let card = page
        .until(
            "the approval card in the alert's thread",
            &format!(
                "[...document.querySelectorAll('[data-thread=\"{}\"] > .msg:not(.ephemeral)')]\
                 .filter(m => m.querySelector('button[data-action-id=\"approve\"]')).map(m => m.dataset.key)[0]",
                alert.trim_start_matches("m:")
            ),
        )
        .await;
    let card = card.as_str().unwrap().to_string();
    let card_text =
        format!("(document.querySelector('.msg[data-key=\"{card}\"]') || {{}}).innerText || ''");
    page.click(&format!(
        ".msg[data-key=\"{card}\"] button[data-action-id=\"approve\"]"
    ))
    .await;
    let refusal = "[...document.querySelectorAll('.msg.ephemeral')].some(m => m.innerText.includes('four-eyes'))";
    page.until("Alice's approval refused, to her alone", refusal)
        .await;

    // Bob approves: one Job, it runs and succeeds; the card and the alert say so.
    page.act_as("U_BOB").await;
    page.until("the refusal hidden from Bob", &format!("!({refusal})"))
        .await;
    page.click(&format!(
        ".msg[data-key=\"{card}\"] button[data-action-id=\"approve\"]"
    ))
    .await;
    page.until(
        "the card at succeeded",
        &format!("({card_text}).includes('succeeded')"),
    )
    .await;
    page.until(
        "the alert at succeeded",
        &format!("({}).includes('succeeded')", own_text(&alert)),
    )
    .await;
    page.until(
        "the rerun Job succeeded in the cluster panel",
        "document.querySelector('tr[data-job^=\"billing/billing-sync-rerun-\"][data-state=\"succeeded\"]')",
    )
    .await;
    page.until(
        "the approval in the audit trail",
        "document.querySelector('#audit [data-action=\"rerun.approved\"]')",
    )
    .await;
    page.shot("approval.png").await;

    // Dana: /hold all, confirmed; every CronJob suspended, the etl Job gone.
    page.act_as("U_DANA").await;
    page.until(
        "etl running",
        "document.querySelector('tr[data-job^=\"ops/etl-\"][data-state=\"running\"]')",
    )
    .await;
    page.command("/hold all --reason \"db maintenance\"").await;
    page.click(".msg.ephemeral button[data-action-id=\"hold_confirm\"]")
        .await;
    page.until(
        "every CronJob suspended",
        "[...document.querySelectorAll('tr[data-cronjob]')].length === 5 && \
         [...document.querySelectorAll('tr[data-cronjob]')].every(r => r.dataset.suspended === 'true')",
    )
    .await;
    page.until(
        "the etl Job terminated",
        "!document.querySelector('tr[data-job^=\"ops/etl-\"]')",
    )
    .await;
    page.until(
        "the hold summary",
        "[...document.querySelectorAll('#messages .msg:not(.ephemeral)')].some(m => m.innerText.includes('4 suspended, 1 already suspended'))",
    )
    .await;
    page.shot("hold.png").await;

    // /resume all: what the hold suspended runs again; log-rotate stays suspended.
    page.command("/resume all").await;
    page.click(".msg.ephemeral button[data-action-id=\"resume_confirm\"]")
        .await;
    page.until(
        "the CronJobs resumed, log-rotate still suspended",
        "[...document.querySelectorAll('tr[data-cronjob]')].every(r => \
           r.dataset.suspended === String(r.dataset.cronjob === 'ops/log-rotate'))",
    )
    .await;

    let errors = page.errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    page.c.clone().close().await.expect("browser closes");
    demo.shutdown().await;
    drop(driver);
    eprintln!("demo browser test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_teams_tab_in_a_real_browser_dialog_and_four_eyes() {
    let started = Instant::now();
    let (driver, demo, page, _profile) = session().await;
    page.c
        .goto(&format!("{}?user=U_ALICE&tab=teams", demo.url()))
        .await
        .expect("page loads");
    page.until(
        "the Teams tab shown",
        "document.body.dataset.tab === 'teams' && document.querySelector('#teams-messages').offsetParent",
    )
    .await;

    // Alice: the billing-sync alert card in the Teams channel, Rerun, the dialog.
    let thread = page
        .until(
            "the billing-sync alert card with its log",
            "[...document.querySelectorAll('#teams-messages > .t-thread')].filter(t => { \
               const root = t.querySelector(':scope > .t-msg.root'); \
               return root && root.innerText.includes('billing/billing-sync') \
                 && [...root.querySelectorAll('.ac-mono')].some(l => l.textContent.includes('UndefinedTable')) \
                 && root.querySelector('button[data-verb=\"rerun\"]'); }) \
             .map(t => t.dataset.thread)[0]",
        )
        .await;
    let thread = thread.as_str().unwrap().to_string();
    let root = format!(".t-thread[data-thread=\"{thread}\"] > .t-msg.root");
    let root_text = format!("(document.querySelector('{root}') || {{}}).innerText || ''");
    page.shot("teams-alert.png").await;
    page.click(&format!("{root} button[data-verb=\"rerun\"]"))
        .await;
    page.until(
        "the rerun dialog with a reason field",
        "document.querySelector('.t-dialog [data-input-id=\"reason\"]')",
    )
    .await;
    page.type_into(
        ".t-dialog [data-input-id=reason] textarea, .t-dialog [data-input-id=reason] input",
        "ledger table was missing; migration ran",
    )
    .await;
    page.click(".t-dialog [data-role=submit]").await;
    page.until("the dialog closed", "!document.querySelector('.t-dialog')")
        .await;

    // The approval card in the alert's thread; Alice may not approve it.
    let card = page
        .until(
            "the approval card in the alert's thread",
            &format!(
                "[...document.querySelectorAll('.t-thread[data-thread=\"{thread}\"] .t-msg.reply')]\
                 .filter(m => m.querySelector('button[data-verb=\"approve\"]')).map(m => m.dataset.id)[0]"
            ),
        )
        .await;
    let card = card.as_str().unwrap().to_string();
    let card_css = format!(".t-msg.reply[data-id=\"{card}\"]");
    let card_text = format!("(document.querySelector('{card_css}') || {{}}).innerText || ''");
    page.until(
        "the alert card says who asked",
        &format!("({root_text}).includes('Rerun requested by Alice')"),
    )
    .await;
    page.click(&format!("{card_css} button[data-verb=\"approve\"]"))
        .await;
    let refusal = format!(
        "[...document.querySelectorAll('.t-thread[data-thread=\"{thread}\"] .t-notice')]\
         .some(n => n.innerText.includes('someone else has to approve'))"
    );
    page.until("Alice's approval refused, to her alone", &refusal)
        .await;
    page.shot("teams-approval.png").await;

    // Bob approves: the card and the Teams alert reach succeeded.
    page.act_as("U_BOB").await;
    page.until("the refusal hidden from Bob", &format!("!({refusal})"))
        .await;
    page.click(&format!("{card_css} button[data-verb=\"approve\"]"))
        .await;
    page.until(
        "the approval card at succeeded",
        &format!("({card_text}).includes('succeeded')"),
    )
    .await;
    page.until(
        "the Teams alert at succeeded",
        &format!("({root_text}).includes('succeeded')"),
    )
    .await;
    page.until(
        "the rerun Job, asked by Alice and approved by Bob, succeeded in the cluster panel",
        "[...document.querySelectorAll('tr[data-job^=\"billing/billing-sync-rerun-\"][data-state=\"succeeded\"]')]\
           .some(r => r.innerText.includes('asked by Alice, approved by Bob'))",
    )
    .await;

    let errors = page.errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    page.c.clone().close().await.expect("browser closes");
    demo.shutdown().await;
    drop(driver);
    eprintln!("demo Teams browser test took {:?}", started.elapsed());
}
