/// The desk's one stylesheet, served as /desk.css (the Content-Security-Policy allows no inline
/// style). Plain CSS, readable on a desk PC and on a phone; no font or file from elsewhere.
enum DeskAssets {
    /// The tab's icon: a camera lens on the desk's blue.
    static let icon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#12324f"/>\
        <circle cx="16" cy="16" r="9" fill="none" stroke="#fff" stroke-width="3"/><circle cx="16" cy="16" r="3" fill="#fff"/></svg>
        """

    static let css = """
        :root { --ink: #1d2733; --muted: #5b6776; --line: #d5dbe3; --bad: #b3261e; --bad-bg: #fdecea; --good: #1e7b34; --accent: #0b5cad; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.45 system-ui, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif; color: var(--ink); background: #f5f7fa; }
        header { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .6rem 1.2rem; background: #12324f; color: #fff; flex-wrap: wrap; }
        header a { color: #fff; text-decoration: none; }
        header .brand { font-weight: 600; font-size: 1.1rem; }
        nav { display: flex; align-items: center; gap: 1rem; }
        nav form { margin: 0; }
        nav button { background: transparent; color: #fff; border: 1px solid #fff8; border-radius: 4px; padding: .25rem .7rem; cursor: pointer; }
        main { padding: 1.2rem; max-width: 1400px; margin: 0 auto; }
        h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
        .sign-in, .password { max-width: 24rem; margin: 3rem auto; background: #fff; padding: 1.5rem; border: 1px solid var(--line); border-radius: 8px; }
        label { display: block; margin: .8rem 0; color: var(--muted); }
        input { display: block; width: 100%; padding: .5rem; margin-top: .25rem; font: inherit; border: 1px solid var(--line); border-radius: 4px; }
        button[type=submit] { margin-top: .8rem; padding: .55rem 1.2rem; font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
        .notice { padding: .6rem .8rem; border-radius: 4px; }
        .notice.error { background: var(--bad-bg); color: var(--bad); }
        .notice.info { background: #e8f1fb; color: #0b4a8a; }
        table.boxes, table.rollouts { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
        table.boxes th, table.boxes td, table.rollouts th, table.rollouts td { padding: .45rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; font-size: .95rem; }
        table.boxes thead th, table.rollouts thead th { background: #eef2f6; font-weight: 600; color: var(--muted); }
        tr.trouble { background: #fff8f7; }
        .alarm { display: inline-block; background: var(--bad); color: #fff; border-radius: 3px; padding: 0 .4rem; margin: 0 .2rem .2rem 0; font-size: .85rem; }
        .ok { color: var(--good); }
        .error-text { color: var(--bad); }
        small { color: var(--muted); }
        .scroll { overflow-x: auto; max-width: 100%; }
        @media (max-width: 600px) { main { padding: .6rem; } header { padding: .5rem .6rem; } nav { gap: .6rem; flex-wrap: wrap; } }
        a.small { font-size: .8rem; font-weight: normal; color: var(--accent); }
        a.button { display: inline-block; padding: .45rem 1rem; background: var(--accent); color: #fff; border-radius: 4px; text-decoration: none; }
        .form { max-width: 34rem; background: #fff; padding: 1.5rem; border: 1px solid var(--line); border-radius: 8px; }
        select { display: block; width: 100%; padding: .5rem; margin-top: .25rem; font: inherit; }
        .hint { color: var(--muted); font-size: .9rem; }
        table.list { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
        table.list th, table.list td { padding: .45rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
        table.list td svg.bar { width: 16rem; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; background: #fff; padding: 1rem; border: 1px solid var(--line); border-radius: 8px; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; }
        .coverage { margin-top: 1rem; }
        svg.bar { display: block; width: 100%; height: 28px; border: 1px solid var(--line); background: #fff; }
        svg.bar .uploaded, .key.uploaded::before { fill: #1e7b34; background: #1e7b34; }
        svg.bar .pending, .key.pending::before { fill: #f0a400; background: #f0a400; }
        svg.bar .not_recorded, .key.not_recorded::before { fill: #9aa5b1; background: #9aa5b1; }
        svg.bar .evicted, .key.evicted::before { fill: #b3261e; background: #b3261e; }
        svg.activity { display: block; width: 100%; height: 22px; border-bottom: 1px solid var(--line); background: #fff; }
        td.activity svg.activity { width: 12rem; }
        svg.activity .moved { fill: #6a1b9a; }
        svg.activity .still { fill: #c5cbd3; }
        p.activity-label { margin: .6rem 0 .1rem; font-size: .85rem; color: #4a5560; }
        p.activity.none { font-size: .85rem; color: #6b7680; margin: .2rem 0; }
        .sheet { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: .5rem; margin: .5rem 0 1rem; }
        .sheet figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: .25rem; }
        .sheet img { display: block; width: 100%; height: auto; aspect-ratio: 16 / 9; object-fit: cover; background: #dde2e7; }
        .sheet figcaption { font-size: .85rem; display: flex; justify-content: space-between; gap: .3rem; flex-wrap: wrap; }
        .sheet figcaption a { font-size: .8rem; }
        .sheet figure.chosen { border-color: #6a1b9a; outline: 2px solid #6a1b9a; }
        form.narrow { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
        .axis { display: flex; justify-content: space-between; color: var(--muted); font-size: .85rem; }
        .key { margin-right: 1rem; }
        .key::before { content: ""; display: inline-block; width: .9rem; height: .9rem; margin-right: .3rem; vertical-align: -2px; }
        .state.complete { color: var(--good); font-weight: 600; }
        .state.refused { color: var(--bad); font-weight: 600; }
        .player { background: #fff; padding: 1rem; border: 1px solid var(--line); border-radius: 8px; max-width: 1000px; }
        .player video { display: block; width: 100%; max-height: 60vh; background: #000; }
        .clock { font-size: 1.2rem; margin: .5rem 0; }
        svg.timeline { cursor: pointer; }
        svg.timeline #cursor { fill: #000; }
        ol.clips li.gap { color: var(--bad); list-style: none; margin-left: -1rem; }
        ol.clips .damaged { color: var(--bad); }
        ol.clips a.playing { font-weight: 700; }
        .actions { display: flex; gap: 1rem; align-items: center; margin-top: 1rem; }
        .actions form { margin: 0; }
        form.range { display: flex; flex-wrap: wrap; gap: .6rem 1rem; align-items: flex-end; margin: .5rem 0 1rem; }
        form.range label { margin: 0; }
        form.range input { width: 12.5rem; }
        .actions button[type=submit] { margin: 0; }
        code.sha256 { font-size: .85rem; word-break: break-all; }
        """

    /// The player's script (/desk.js; the Content-Security-Policy allows only scripts from here):
    /// plays the listed clips one after another, shows the wall-clock time of the frame on screen
    /// in the commune's time zone, and seeks where the timeline or a clip is clicked.
    static let script = #"""
        "use strict";
        (function () {
          const player = document.getElementById("player");
          if (!player) return;
          const video = document.getElementById("video");
          const clock = document.getElementById("clock");
          const cursor = document.getElementById("cursor");
          const links = Array.from(document.querySelectorAll("#clips a[data-clip]"));
          const offset = Number(player.dataset.offsetMinutes) * 60000;
          const from = Number(player.dataset.fromMs), to = Number(player.dataset.toMs);
          let index = 0;
          const two = (n) => String(n).padStart(2, "0");
          const format = (ms) => {
            const d = new Date(ms + offset);
            return two(d.getUTCDate()) + "/" + two(d.getUTCMonth() + 1) + "/" + d.getUTCFullYear() + " " +
              two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
          };
          const show = (i, at, play) => {
            index = i;
            links.forEach((l, j) => l.classList.toggle("playing", j === i));
            const src = links[i].getAttribute("href");
            const seek = () => { video.currentTime = at || 0; if (play) video.play().catch(() => {}); };
            if (video.getAttribute("src") !== src) {
              video.addEventListener("loadedmetadata", seek, { once: true });
              video.setAttribute("src", src);
              video.load();
            } else { seek(); }
          };
          video.addEventListener("timeupdate", () => {
            const ms = Number(links[index].dataset.startMs) + video.currentTime * 1000;
            clock.textContent = format(ms);
            clock.dataset.ms = String(Math.round(ms));
            cursor.setAttribute("x", String(Math.max(0, Math.min(998, (ms - from) / (to - from) * 1000))));
          });
          video.addEventListener("ended", () => { if (index + 1 < links.length) show(index + 1, 0, true); });
          links.forEach((a, i) => a.addEventListener("click", (e) => { e.preventDefault(); show(i, 0, true); }));
          document.getElementById("timeline").addEventListener("click", (e) => {
            const box = e.currentTarget.getBoundingClientRect();
            const ms = from + (e.clientX - box.left) / box.width * (to - from);
            let i = links.findIndex((a) => Number(a.dataset.endMs) > ms);
            if (i < 0) i = links.length - 1;
            show(i, Math.max(0, (ms - Number(links[i].dataset.startMs)) / 1000), true);
          });
          window.deskPlayer = { show: show, clips: links.length };
          links[0].classList.add("playing");
        })();
        """#
}
