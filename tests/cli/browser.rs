//! A real browser for the pages gitprio writes: headless Chromium loads the page, a probe
//! script measures the laid-out document, and the DOM comes back with the measurements.
//!
//! `.ci/run` installs Debian's `chromium-headless-shell`; see [`crate::common::tool`] for
//! what happens where no browser is installed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Measures the document once laid out; appended to a copy of the page.
const PROBE: &str = r"<script>
(() => {
  const box = (element) => element.getBoundingClientRect();
  const visible = (element) => { const r = box(element); return r.width > 0 && r.height > 0; };
  const facts = {
    title: document.title,
    figures: [...document.querySelectorAll('figure')].map((figure) => ({
      caption: figure.querySelector('figcaption')?.innerText ?? '',
      svg: figure.querySelector('svg') ? [box(figure.querySelector('svg')).width, box(figure.querySelector('svg')).height] : null,
      drawn_bars: [...figure.querySelectorAll('rect')].filter(visible).length,
      bar_lefts: [...figure.querySelectorAll('rect')].filter(visible).map((r) => Math.round(box(r).x)),
      texts: [...figure.querySelectorAll('text')].filter(visible).map((t) => t.textContent),
    })),
    table_rows: [...document.querySelectorAll('tr')].filter(visible).length,
    headings: [...document.querySelectorAll('h1, h2, h3')].map((h) => h.innerText),
    captions: [...document.querySelectorAll('caption')].filter(visible).map((c) => c.innerText),
    horizontal_overflow: document.documentElement.scrollWidth > window.innerWidth,
    text_length: document.body.innerText.length,
    task_sections: [...document.querySelectorAll('section.task')].map((section) => ({
      heading: section.querySelector('h3')?.innerText ?? '',
      table_rows: [...section.querySelectorAll('tr')].filter(visible).length,
      links: [...section.querySelectorAll('a')].filter(visible).map((a) => ({ text: a.innerText, href: a.getAttribute('href') })),
    })),
  };
  const out = document.createElement('pre');
  out.id = 'gitprio-probe';
  out.textContent = JSON.stringify(facts);
  document.body.appendChild(out);
})();
</script>";

/// Loads `page` in headless Chromium at 1024x768 and returns the probe's measurements, or
/// `None` when no browser is installed (see [`crate::common::tool`]).
pub fn render(page: &Path, scratch: &Path) -> Option<Value> {
    let browser = crate::common::tool(&["chromium-headless-shell", "chromium", "google-chrome"])?;
    let html = std::fs::read_to_string(page).unwrap();
    let probed = scratch.join("probed.html");
    let Some(body_end) = html.rfind("</body>") else {
        panic!("{} has no </body>", page.display());
    };
    std::fs::write(
        &probed,
        format!("{}{PROBE}{}", &html[..body_end], &html[body_end..]),
    )
    .unwrap();
    let profile = scratch.join("browser-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1024,768",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", probed.display()))
        .env("HOME", scratch)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the browser did not finish loading the page within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let dom = String::from_utf8(output.stdout).unwrap();
    let start = dom
        .find("<pre id=\"gitprio-probe\">")
        .unwrap_or_else(|| panic!("the probe did not run; the browser printed:\n{dom}"));
    let json = &dom[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</pre>").unwrap()];
    // The DOM is serialized as HTML, so the probe's JSON comes back entity-escaped.
    let json = json
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(serde_json::from_str(&json).unwrap())
}
