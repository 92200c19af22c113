// The call inspector's player: the stereo waveform (caller above, bot below) drawn from the server's peaks,
// turn and event marks on it, and seeking from the waveform, the turns and the events.
(function () {
  var audio = document.getElementById("audio");
  var canvas = document.getElementById("waveform");
  var position = document.getElementById("position");
  var turns = JSON.parse(document.getElementById("turn-markers").textContent);
  var events = JSON.parse(document.getElementById("event-markers").textContent);
  var BUCKETS_PER_SECOND = 20;  // the server's peaks: one per 50 ms per channel
  var peaks = null;

  function duration() {
    if (audio && isFinite(audio.duration) && audio.duration > 0) return audio.duration;
    return peaks ? peaks.length / 2 / BUCKETS_PER_SECOND : 0;
  }

  function draw() {
    if (!canvas) return;
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    var g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    var total = duration();
    var mid = h / 2;
    g.fillStyle = "#edf2f7";
    g.fillRect(0, mid - 0.5, w, 1);
    if (peaks && total) {
      var count = peaks.length / 2;
      for (var x = 0; x < w; x++) {
        var from = Math.floor(x / w * count), to = Math.max(from + 1, Math.floor((x + 1) / w * count));
        var caller = 0, bot = 0;
        for (var i = from; i < to && i < count; i++) {
          caller = Math.max(caller, peaks[2 * i]);
          bot = Math.max(bot, peaks[2 * i + 1]);
        }
        g.fillStyle = "#3182ce";
        g.fillRect(x, mid - 2 - caller / 255 * (mid - 4), 1, caller / 255 * (mid - 4));
        g.fillStyle = "#38a169";
        g.fillRect(x, mid + 2, 1, bot / 255 * (mid - 4));
      }
    }
    if (!total) return;
    g.fillStyle = "rgba(26,32,44,0.55)";
    turns.forEach(function (turn) {
      var x = turn.at / total * w;
      g.fillRect(x, 0, 1, h);
      g.fillText(String(turn.index), x + 2, 10);
    });
    g.fillStyle = "#d69e2e";
    events.forEach(function (event) { g.fillRect(event.at / total * w - 1, h - 8, 3, 8); });
    if (audio) {
      g.fillStyle = "#e53e3e";
      g.fillRect(audio.currentTime / total * w - 1, 0, 2, h);
    }
  }

  function highlight() {
    if (!audio) return;
    var now = audio.currentTime, current = null;
    document.querySelectorAll(".turn[data-seek]").forEach(function (el) {
      if (parseFloat(el.dataset.seek) <= now + 0.05) current = el;
    });
    document.querySelectorAll(".turn.current").forEach(function (el) { el.classList.remove("current"); });
    if (current) current.classList.add("current");
    if (position) position.textContent = now.toFixed(1) + " s";
  }

  function seek(seconds) {
    if (!audio) return;
    audio.currentTime = Math.max(0, seconds);
    var playing = audio.play();
    if (playing && playing.catch) playing.catch(function () {});  // a browser may refuse to start playback
    highlight();
    draw();
  }

  document.querySelectorAll("[data-seek]").forEach(function (el) {
    el.addEventListener("click", function (event) {
      if (event.target.closest("details, summary, pre")) return;
      seek(parseFloat(el.dataset.seek));
    });
    el.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); seek(parseFloat(el.dataset.seek)); }
    });
  });
  if (canvas) {
    canvas.addEventListener("click", function (event) {
      var box = canvas.getBoundingClientRect();
      seek((event.clientX - box.left) / box.width * duration());
    });
    fetch(canvas.dataset.peaks, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.arrayBuffer() : null; })
      .then(function (buffer) { peaks = buffer ? new Uint8Array(buffer) : null; draw(); });
  }
  if (audio) {
    ["timeupdate", "loadedmetadata", "seeked"].forEach(function (name) {
      audio.addEventListener(name, function () { highlight(); draw(); });
    });
  }
  window.addEventListener("resize", draw);
  draw();
})();
