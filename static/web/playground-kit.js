// What the chat and voice playgrounds share: transcript lines, the inspector's lists and the app's own WebSocket.
// A plain script (no bundler) loaded before both; it defines one global, playgroundKit.
window.playgroundKit = (function () {
  // A message of `kind` (bot, user, caller, error…) at the end of `transcript`, scrolled into view.
  function line(transcript, kind, text) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    const span = document.createElement("span");
    span.textContent = text;
    div.appendChild(span);
    transcript.appendChild(div);
    transcript.scrollTop = transcript.scrollHeight;
    return div;
  }

  function item(list, text, isError) {
    const li = document.createElement("li");
    li.textContent = text;
    if (isError) li.className = "error";
    list.appendChild(li);
  }

  function showPassages(list, passages) {
    list.innerHTML = "";
    passages.forEach((p) => item(list, `${p.name}${p.page ? " p." + p.page : ""} (${p.score}): ${p.text}`));
  }

  function toolStarted(list, e) { item(list, `→ ${e.name}(${JSON.stringify(e.input)})`); }
  function toolFinished(list, e) { item(list, `← ${e.name}: ${e.result} (${e.duration_ms} ms)`, e.is_error); }

  // A WebSocket to `path` on this site, secure when the page is.
  function openSocket(path) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    return new WebSocket(scheme + location.host + path);
  }

  return { line, item, showPassages, toolStarted, toolFinished, openSocket };
})();
