//! The page shell: head, header with navigation by role, language switch,
//! sign-out, and the security headers every console response carries.

use assist_protocol::Role;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::{Ctx, Signed};

/// The stylesheet and script, compiled into the binary.
pub const CSS: &str = include_str!("assets/console.css");
pub const JS: &str = include_str!("assets/console.js");

/// Security headers of every console page: scripts and styles from this
/// origin only (no inline code), no framing, no caching of content.
pub fn harden(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An HTML response with `status`.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        markup.into_string(),
    )
        .into_response();
    harden(&mut resp);
    resp
}

/// One navigation entry: path, Chinese, English, who sees it.
struct Nav {
    path: &'static str,
    zh: &'static str,
    en: &'static str,
    roles: &'static [Role],
}

const NAV: &[Nav] = &[
    Nav {
        path: "/",
        zh: "首页",
        en: "Home",
        roles: &[
            Role::Rep,
            Role::Manager,
            Role::Trainer,
            Role::Compliance,
            Role::Admin,
        ],
    },
    Nav {
        path: "/alerts",
        zh: "风险提醒",
        en: "Alerts",
        roles: &[Role::Manager, Role::Compliance, Role::Admin],
    },
    Nav {
        path: "/audit",
        zh: "审计日志",
        en: "Audit log",
        roles: &[Role::Compliance, Role::Admin],
    },
];

/// A full page. `signed` is `None` on the sign-in and invitation pages.
pub fn page(ctx: &Ctx, signed: Option<&Signed>, title: &str, main: Markup) -> Markup {
    let lang = ctx.lang;
    let path = ctx.here.split('?').next().unwrap_or("/");
    let switch_to = lang.other();
    let switch_href = format!(
        "/lang/{}?next={}",
        switch_to.code(),
        super::pages::encode(&ctx.here)
    );
    html! {
        (DOCTYPE)
        html lang=(lang.html()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("会话助手", "Assist")) }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { (lang.t("跳到正文", "Skip to content")) }
                header.top {
                    a.brand href="/" { (lang.t("会话助手", "Assist")) }
                    @if let Some(s) = signed {
                        nav aria-label=(lang.t("主导航", "Main")) {
                            ul {
                                @for n in NAV.iter().filter(|n| n.roles.contains(&s.session.role())) {
                                    @let current = if n.path == "/" { path == "/" } else { path.starts_with(n.path) };
                                    li {
                                        a href=(n.path) aria-current=[current.then_some("page")] { (lang.t(n.zh, n.en)) }
                                    }
                                }
                            }
                        }
                    }
                    div.tools {
                        a.lang href=(switch_href) lang=(switch_to.html()) hreflang=(switch_to.html()) {
                            (lang.t("English", "中文"))
                        }
                        @if let Some(s) = signed {
                            a.who href="/account" title=(lang.t("我的账号", "My account")) {
                                span.name data-testid="who" { (s.session.user.name) }
                                " · "
                                span.role { (lang.role(s.session.role())) }
                            }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(s.csrf());
                                button.link type="submit" { (lang.t("退出登录", "Sign out")) }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (main)
                }
                footer.foot {
                    (lang.t("会话助手 · 数据只保存在本公司的服务器上", "Assist · your data stays on your company's server"))
                }
            }
        }
    }
}

/// A notice box (`kind`: `info`, `ok`, `error`).
pub fn notice(kind: &str, text: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! {
        p class=(format!("notice {kind}")) role=(role) { (text) }
    }
}
