// The overview's two charts (uPlot): calls and minutes; reply latency p50/p95 with the mean of each stage.
(function () {
  var data = JSON.parse(document.getElementById("overview-charts").textContent);
  if (!data.at.length) {
    document.querySelectorAll(".chart").forEach(function (el) { el.textContent = "No calls in this period."; });
    return;
  }
  function width(el) { return Math.max(320, el.clientWidth || 600); }
  function chart(id, series, values, axes) {
    var el = document.getElementById(id);
    var plot = new uPlot({width: width(el), height: 220, series: [{}].concat(series), axes: axes,
                          scales: {x: {time: true}}, legend: {live: true}}, [data.at].concat(values), el);
    window.addEventListener("resize", function () { plot.setSize({width: width(el), height: 220}); });
    return plot;
  }
  var bars = uPlot.paths.bars({size: [0.6, 40]});
  chart("chart-calls", [
    {label: "calls", stroke: "#2b6cb0", fill: "rgba(43,108,176,0.25)", paths: bars, points: {show: false}},
    {label: "minutes", stroke: "#805ad5", scale: "min", width: 2},
  ], [data.calls, data.minutes], [{}, {label: "calls"}, {side: 1, scale: "min", label: "minutes", grid: {show: false}}]);
  var colors = {stt: "#dd6b20", llm: "#3182ce", tts: "#38a169", platform: "#718096"};
  chart("chart-latency", [
    {label: "p50 ms", stroke: "#1a202c", width: 2},
    {label: "p95 ms", stroke: "#e53e3e", width: 2, dash: [6, 4]},
  ].concat(["stt", "llm", "tts", "platform"].map(function (stage) {
    return {label: stage.toUpperCase() + " mean ms", stroke: colors[stage], width: 1};
  })), [data.p50, data.p95, data.stt, data.llm, data.tts, data.platform], [{}, {label: "ms"}]);
})();
