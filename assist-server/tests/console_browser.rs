//! The console in a real browser: Debian's headless chromium driven over
//! WebDriver (chromedriver), against the real router on a local port. Each role signs in and sees its home; a manager gives the
//! access reason, sees a new alert arrive live (SSE) and acknowledges it
//! with the row's button; a stolen session cookie without the CSRF token
//! cannot post. Screenshots go to `<target dir>/console-screenshots/`.
//!
//! Skipped (`assist_testkit::skip`, kind `tool`) when `chromium` or
//! `chromedriver` is missing; `scripts/install-deps` installs both.
//!
//! The WebDriver client is the few W3C commands below over the `reqwest`
//! the server already uses: a WebDriver crate (fantoccini) changed the
//! features of shared dependencies enough to rebuild the whole tree.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assist_server::db::testing;
use assist_server::http::app::app;
use assist_testkit::Kind;
use common::{TestApp, setup};
use serde_json::{Value, json};

const PASSWORD: &str = "browser test 密码";

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `chromedriver` on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(bin: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

/// One browser session over the W3C WebDriver protocol.
struct Client {
    http: reqwest::Client,
    /// `{driver}/session/{id}`
    session: String,
}

/// The key W3C WebDriver gives element references under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Client {
    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let json: Value = resp.json().await.map_err(|e| e.to_string())?;
        match json["value"].get("error") {
            Some(err) => Err(format!("{err}: {}", json["value"]["message"])),
            None => Ok(json["value"].clone()),
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn find(&self, css: &str) -> Result<String, String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element reference in {v}"))
    }

    async fn click(&self, css: &str) {
        let el = self
            .find(css)
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .find(css)
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    async fn text(&self, css: &str) -> Result<String, String> {
        let el = self.find(css).await?;
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", None)
            .await
            .expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    async fn cookie(&self, name: &str) -> String {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/cookie/{name}"), None)
            .await
            .unwrap_or_else(|e| panic!("cookie {name}: {e}"));
        v["value"].as_str().unwrap_or_default().to_string()
    }

    async fn add_cookie(&self, name: &str, value: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/cookie",
            Some(json!({"cookie": {"name": name, "value": value, "path": "/", "httpOnly": true}})),
        )
        .await
        .unwrap_or_else(|e| panic!("add cookie: {e}"));
    }

    async fn close(self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}

async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            // Chinese first, as the console's users read it.
            "prefs": {"intl.accept_languages": "zh-CN,zh"},
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--lang=zh-CN",
            ],
        },
    }}});
    let resp: Value = http
        .post(format!("{}/session", driver.url))
        .json(&caps)
        .send()
        .await
        .expect("chromedriver answers")
        .json()
        .await
        .expect("a JSON answer");
    let id = resp["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no chromium session: {resp}"));
    Client {
        session: format!("{}/session/{id}", driver.url),
        http,
    }
}

/// `<target dir>/console-screenshots`, beside the test binary's profile dir.
fn shots_dir() -> PathBuf {
    let dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("target")),
    };
    let dir = dir.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await;
    let path = shots_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

async fn serve(test: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(test.state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn sign_in(c: &Client, base: &str, username: &str) {
    c.goto(&format!("{base}/login")).await;
    c.type_into("#username", username).await;
    c.type_into("#password", PASSWORD).await;
    c.click("button.primary").await;
    wait_for(c, "[data-testid=home-title]").await;
}

/// Wait until `css` matches an element.
async fn wait_for(c: &Client, css: &str) {
    for _ in 0..100 {
        if c.find(css).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never appeared: {}", c.source().await);
}

/// Wait until `css` matches an element whose text contains `text`.
async fn wait_text(c: &Client, css: &str, text: &str) -> String {
    for _ in 0..100 {
        if let Ok(t) = c.text(css).await
            && t.contains(text)
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never showed `{text}`: {}", c.source().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_sign_in_and_a_manager_handles_a_live_alert_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        assist_testkit::skip(
            Kind::Tool,
            "the console's browser test: chromium and chromedriver are not installed (scripts/install-deps installs them)",
        );
        return;
    };
    let t = testing::sqlite().await;
    let app = setup(t.db.clone()).await;
    let db = &app.state.db;
    for name in ["admin", "manager", "rep", "trainer", "compliance"] {
        let user = db.find_user(&app.org_id, name).await.unwrap();
        assist_server::console::set_password(db, &user, name, PASSWORD)
            .await
            .unwrap();
    }
    let base = serve(&app).await;
    let driver = start_driver(&chromedriver).await;

    let c = browser(&driver, &chromium).await;
    c.goto(&format!("{base}/login")).await;
    wait_for(&c, "#username").await;
    shot(&c, "login").await;
    c.close().await;

    // Each role: its own browser session, its home.
    for (who, marker) in [
        ("rep", "你的工作手机"),
        ("trainer", "内容状态"),
        ("compliance", "最近的审计记录"),
        ("admin", "人员与登录"),
        ("manager", "团队成员"),
    ] {
        let c = browser(&driver, &chromium).await;
        sign_in(&c, &base, who).await;
        let title = c.text("[data-testid=home-title]").await.unwrap();
        assert!(title.contains(who), "{who}: {title}");
        wait_text(&c, "main", marker).await;
        shot(&c, &format!("home-{who}")).await;
        if who == "compliance" {
            c.goto(&format!("{base}/audit")).await;
            wait_text(&c, "h1", "审计日志").await;
            shot(&c, "audit-log").await;
        }
        c.close().await;
    }

    // The manager's inbox, live.
    let c = browser(&driver, &chromium).await;
    sign_in(&c, &base, "manager").await;
    c.goto(&format!("{base}/alerts")).await;
    // Asked for the reason once.
    wait_for(&c, "#reason").await;
    shot(&c, "reason").await;
    c.type_into("#reason", "处理风险提醒").await;
    c.click("button.primary").await;
    wait_for(&c, "table[data-stream]").await;
    wait_text(&c, "[data-testid=live-state]", "实时更新中").await;

    // The rep's phone sends a risky chat; the row appears without a reload.
    let resp = app
        .send_json(
            "POST",
            "/v1/conversations/browser-1/messages",
            Some(&app.tokens.rep),
            &json!({"channel": "wecom", "messages": [{
                "client_message_id": "b-1", "sender": "rep",
                "text": "加我微信吧，微信号 zhangwei8899，私下聊", "sent_at": "2026-11-24T09:30:00+08:00"
            }]}),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
    let listed = app
        .get(
            "/v1/alerts?conversation_id=browser-1",
            Some(&app.tokens.manager),
        )
        .await;
    let alert = listed.json[0]["id"].as_str().unwrap().to_string();
    let row = format!("#alert-{alert}");
    let text = wait_text(&c, &row, "私人联系方式").await;
    assert!(text.contains("rep"), "the rep by name: {text}");
    shot(&c, "inbox-live-alert").await;

    // Acknowledge with the row's button.
    c.click(&format!("{row} button[data-testid=ack]")).await;
    wait_text(&c, &format!("{row} [data-testid=status]"), "已确认收到").await;
    let api = app
        .get(&format!("/v1/alerts/{alert}"), Some(&app.tokens.manager))
        .await;
    assert_eq!(api.json["status"], "acknowledged");
    shot(&c, "inbox-acknowledged").await;
    c.goto(&format!("{base}/alerts/{alert}")).await;
    wait_text(&c, "main", "zhangwei8899").await;
    shot(&c, "alert-detail").await;

    // A stolen session cookie, in another browser, without the CSRF token:
    // a same-origin POST is refused and nothing changes.
    let stolen = c.cookie("assist_session").await;
    let thief = browser(&driver, &chromium).await;
    thief.goto(&format!("{base}/login")).await;
    thief.add_cookie("assist_session", &stolen).await;
    thief.goto(&format!("{base}/")).await;
    wait_text(&thief, "[data-testid=home-title]", "manager").await;
    let status = thief
        .execute(
            "return fetch(arguments[0], {method: 'POST', body: new URLSearchParams({note: '伪造'})}).then(r => r.status);",
            vec![json!(format!("/alerts/{alert}/resolve"))],
        )
        .await;
    assert_eq!(status, json!(403));
    let api = app
        .get(&format!("/v1/alerts/{alert}"), Some(&app.tokens.manager))
        .await;
    assert_eq!(
        api.json["status"], "acknowledged",
        "the forged post changed nothing"
    );
    thief.close().await;

    // English by the switch.
    c.goto(&format!("{base}/lang/en?next=/")).await;
    wait_text(&c, "[data-testid=home-title]", "Hello").await;
    shot(&c, "home-manager-en").await;
    c.close().await;
}
