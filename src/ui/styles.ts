/** The status page's stylesheet: system fonts, readable on a phone, tables that scroll sideways. */
export const STYLES = `:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --fg: #1f2328; --muted: #59636e; --card: #fff; --line: #d1d9e0; --link: #0550ae;
  --green: #1a7f37; --red: #cf222e; --blue: #0969da; --amber: #9a6700; --grey: #59636e;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --card: #151b23; --line: #3d444d; --link: #4493f8; }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", Arial, sans-serif; }
a { color: var(--link); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace; font-size: 0.9em; }
.top { background: #25292e; padding: 0.6rem 1rem; }
.brand { color: #fff; font-weight: 600; text-decoration: none; }
main { max-width: 75rem; margin: 0 auto; padding: 0.75rem 1rem 2rem; }
h1 { font-size: 1.35rem; margin: 0.5rem 0 0.75rem; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.6rem; }
.small { font-size: 0.8rem; font-weight: 400; margin-left: 0.5rem; }
.scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.45rem 0.75rem; border-bottom: 1px solid var(--line); white-space: nowrap; vertical-align: middle; }
th { font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); }
tbody tr:last-child td { border-bottom: 0; }
tr.empty td { color: var(--muted); font-style: italic; }
.strong { font-weight: 600; }
.muted { color: var(--muted); font-size: 0.8rem; }
.badge { display: inline-block; padding: 0 0.55rem; border-radius: 999px; font-size: 0.78rem; font-weight: 600; line-height: 1.6; color: #fff; background: var(--grey); white-space: nowrap; vertical-align: middle; }
.badge-succeeded { background: var(--green); }
.badge-failed, .badge-timed_out { background: var(--red); }
.badge-running { background: var(--blue); }
.badge-queued { background: var(--amber); }
.badge-skipped { background: transparent; color: var(--muted); box-shadow: inset 0 0 0 1px var(--line); }
.notice { background: #fff8c5; color: #3b2300; border: 1px solid #d4a72c; border-radius: 6px; padding: 0.5rem 0.75rem; }
.notice[hidden], .next-run[hidden] { display: none; }
.crumbs { margin: 0.25rem 0; }
.record { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 1rem; margin: 0; padding: 0.75rem 1rem; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
.record dt { color: var(--muted); }
.record dd { margin: 0; overflow-wrap: anywhere; }
.log { margin: 0; padding: 0.75rem 1rem; max-height: 70vh; overflow: auto; background: #0d1117; color: #e6edf3; border: 1px solid var(--line); border-radius: 6px; line-height: 1.45; white-space: pre-wrap; overflow-wrap: anywhere; }
.log.trimmed::before { content: "… earlier output is not shown here: the raw log has all of it\\A"; color: #9198a1; }
@media (max-width: 40rem) {
  main { padding: 0.5rem 0.6rem 1.5rem; }
  .record { grid-template-columns: 1fr; gap: 0; }
  .record dd { margin-bottom: 0.4rem; }
  .log { font-size: 0.8rem; }
}
`;
