// The chat playground: one WebSocket per page; the reply streams into the last bot message.
(function () {
  const root = document.querySelector(".playground");
  const messages = document.getElementById("messages");
  const input = document.getElementById("message");
  const status = document.getElementById("status");
  const tools = document.getElementById("tools");
  const passages = document.getElementById("passages");
  const timings = document.getElementById("timings");
  let current = null;

  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + root.dataset.socket);

  function add(kind, text) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    const span = document.createElement("span");
    span.textContent = text;
    div.appendChild(span);
    messages.appendChild(div);
    messages.scrollTop = messages.scrollHeight;
    return span;
  }

  function item(list, text, isError) {
    const li = document.createElement("li");
    li.textContent = text;
    if (isError) li.className = "error";
    list.appendChild(li);
  }

  const handlers = {
    retrieval(e) {
      passages.innerHTML = "";
      e.passages.forEach(p => item(passages, `${p.name}${p.page ? " p." + p.page : ""} (${p.score}): ${p.text}`));
    },
    first_token() { status.textContent = "Answering…"; },
    text(e) {
      if (!current) current = add("bot", "");
      current.textContent += e.text;
      messages.scrollTop = messages.scrollHeight;
    },
    tool_started(e) { item(tools, `→ ${e.name}(${JSON.stringify(e.input)})`); },
    tool_finished(e) { item(tools, `← ${e.name}: ${e.result} (${e.duration_ms} ms)`, e.is_error); },
    done(e) {
      if (!current) add("bot", e.response);
      current = null;
      status.textContent = "";
      timings.textContent = JSON.stringify(e.timings, null, 2);
    },
    error(e) { add("error", e.error); current = null; status.textContent = ""; },
    new() { messages.innerHTML = ""; tools.innerHTML = ""; passages.innerHTML = ""; timings.textContent = ""; },
  };

  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    (handlers[event.type] || (() => {}))(event);
  };
  socket.onclose = () => { status.textContent = "Disconnected. Reload the page to reconnect."; };

  document.getElementById("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    add("user", text);
    tools.innerHTML = "";
    current = null;
    status.textContent = "Thinking…";
    socket.send(JSON.stringify({ type: "message", text }));
    input.value = "";
  });
  document.getElementById("new-conversation").addEventListener("click", () => socket.send(JSON.stringify({ type: "new" })));
})();
