// The chat playground: one WebSocket per page; the reply streams into the last bot message. Lines, lists and the
// socket: playground-kit.js.
(function () {
  const kit = window.playgroundKit;
  const root = document.querySelector(".playground");
  const messages = document.getElementById("messages");
  const input = document.getElementById("message");
  const status = document.getElementById("status");
  const tools = document.getElementById("tools");
  const passages = document.getElementById("passages");
  const timings = document.getElementById("timings");
  let current = null;

  const socket = kit.openSocket(root.dataset.socket);
  // What is sent before the socket is open (a slow network, a busy server) waits for it: sending on a connecting
  // socket throws, and the question would be lost.
  const waiting = [];
  socket.onopen = () => { while (waiting.length) socket.send(waiting.shift()); };
  const send = (message) => {
    const data = JSON.stringify(message);
    if (socket.readyState === WebSocket.CONNECTING) waiting.push(data);
    else socket.send(data);
  };
  const add = (kind, text) => kit.line(messages, kind, text).firstChild; // the span the reply streams into

  const handlers = {
    retrieval(e) { kit.showPassages(passages, e.passages); },
    first_token() { status.textContent = "Answering…"; },
    text(e) {
      if (!current) current = add("bot", "");
      current.textContent += e.text;
      messages.scrollTop = messages.scrollHeight;
    },
    tool_started(e) { kit.toolStarted(tools, e); },
    tool_finished(e) { kit.toolFinished(tools, e); },
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
    send({ type: "message", text });
    input.value = "";
  });
  document.getElementById("new-conversation").addEventListener("click", () => send({ type: "new" }));
})();
