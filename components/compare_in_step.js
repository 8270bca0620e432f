// Wan Studio's Compare page: one play/pause button and one position slider for every clip.
// Clips are found by their containers' keys (data.clips); they are muted and looped, and lose
// their own controls. The longest clip sets the time; the others follow it, and a shorter one
// waits on its last frame until the longest one loops.
export default function ({ data, parentElement }) {
  const root = parentElement;
  if (root.__compareStop) root.__compareStop();
  const button = root.querySelector(".sync-play");
  const seek = root.querySelector(".sync-seek");
  const clock = root.querySelector(".sync-clock");
  const keys = (data && data.clips) || [];
  const HOLD = 0.05;   // a shorter clip waits this far before its end for the longest one
  const DRIFT = 0.12;  // a clip further than this from the longest one is put back in step
  const videos = () =>
    keys.map((key) => document.querySelector(`.st-key-${key} video`)).filter(Boolean);
  const longest = (list) =>
    list.reduce((a, b) => ((b.duration || 0) > (a.duration || 0) ? b : a), list[0]);
  const endOf = (video) => (isFinite(video.duration) ? video.duration - HOLD : Infinity);
  const spot = (video, time) => Math.max(0, Math.min(time, endOf(video)));
  let playing = videos().some((video) => !video.paused);
  let lastTime = 0;
  let frame = 0;
  let stopped = false;

  const prepare = (video) => {
    video.muted = true;
    video.loop = true;
    video.controls = false;
    video.playsInline = true;
    video.preload = "auto";
  };
  const text = (seconds) => {
    const whole = Math.max(0, seconds || 0);
    const minutes = Math.floor(whole / 60);
    return `${minutes}:${(whole - minutes * 60).toFixed(1).padStart(4, "0")}`;
  };
  const show = (time, length) => {
    if (isFinite(length) && length > 0 && seek.max !== String(length)) seek.max = String(length);
    if (document.activeElement !== seek || playing) seek.value = String(time);
    clock.textContent = `${text(time)} / ${text(length)}`;
    const said = `${time.toFixed(1)} of ${(length || 0).toFixed(1)} seconds`;
    seek.setAttribute("aria-valuetext", said);
    button.textContent = playing ? "Pause all" : "Play all";
  };
  const seeked = (video) =>
    new Promise((done) => {
      if (!video.seeking) return done();
      const finish = () => { video.removeEventListener("seeked", finish); done(); };
      video.addEventListener("seeked", finish);
      setTimeout(finish, 2000);
    });
  // Everyone to one time, then all start in the same moment.
  const startTogether = async (time) => {
    const list = videos();
    list.forEach((video) => {
      prepare(video);
      video.pause();
      video.currentTime = spot(video, time);
    });
    await Promise.all(list.map(seeked));
    if (!playing || stopped) return;
    lastTime = time;
    await Promise.all(list.map((video) => video.play().catch(() => {})));
  };
  const moveAll = (time) => {
    videos().forEach((video) => { video.pause(); video.currentTime = spot(video, time); });
  };
  const step = () => {
    const list = videos();
    if (list.length) {
      list.forEach((video) => {
        if (!video.muted || !video.loop || video.controls) prepare(video);
      });
      // Usable once every clip is on the page and under this control.
      button.disabled = list.length < keys.length;
      const lead = longest(list);
      const time = lead.currentTime;
      if (playing && !list.some((video) => video.seeking)) {
        const wrapped = time + 0.25 < lastTime;  // the longest clip looped to its start
        for (const video of list) {
          if (video === lead) continue;
          const end = endOf(video);
          if (time >= end) {
            if (!video.paused) video.pause();
            if (Math.abs(video.currentTime - end) > DRIFT) video.currentTime = end;
          } else {
            if (wrapped || Math.abs(video.currentTime - time) > DRIFT) video.currentTime = time;
            if (video.paused) video.play().catch(() => {});
          }
        }
        if (lead.paused) lead.play().catch(() => {});
      }
      lastTime = time;
      show(time, lead.duration);
    }
    if (!stopped) frame = requestAnimationFrame(step);
  };

  const onPress = () => {
    playing = !playing;
    if (playing) {
      const list = videos();
      startTogether(list.length ? longest(list).currentTime : 0);
    } else {
      videos().forEach((video) => video.pause());
    }
    button.textContent = playing ? "Pause all" : "Play all";
  };
  const onScrub = () => moveAll(Number(seek.value));
  const onRelease = () => { if (playing) startTogether(Number(seek.value)); };
  button.addEventListener("click", onPress);
  seek.addEventListener("input", onScrub);
  seek.addEventListener("change", onRelease);
  videos().forEach(prepare);
  frame = requestAnimationFrame(step);

  const stop = () => {
    stopped = true;
    cancelAnimationFrame(frame);
    button.removeEventListener("click", onPress);
    seek.removeEventListener("input", onScrub);
    seek.removeEventListener("change", onRelease);
    root.__compareStop = null;
  };
  root.__compareStop = stop;
  return stop;
}
