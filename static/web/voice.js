// The voice playground: press Talk, speak, hear the bot, through the same pipeline as a phone call.
// The microphone is captured by an AudioWorklet (voice-capture.js) as 16 kHz 16-bit PCM and sent over the app's
// own WebSocket; the bot's voice streams back into a small jitter buffer (voice-playback.js). The socket speaks
// the protocol written down in voicebots/web/voice_protocol.py. Lines, lists and the socket: playground-kit.js.
(function () {
  const root = document.getElementById("voice");
  if (!root) return;
  const kit = window.playgroundKit;
  const talkButton = document.getElementById("talk");
  const hangUpButton = document.getElementById("hang-up");
  const status = document.getElementById("voice-status");
  const transcript = document.getElementById("voice-transcript");
  const turns = document.querySelector("#voice-turns tbody");
  const tools = document.getElementById("voice-tools");
  const passages = document.getElementById("voice-passages");
  const FORMAT = { encoding: "linear16", sample_rate: 16000, channels: 1 };
  const JITTER_TARGET_MS = 80;
  const MICROPHONE_PROBLEMS = {
    NotAllowedError: "Microphone access was denied. Allow the microphone for this site (the icon in the address bar) and press Talk again.",
    SecurityError: "Microphone access is blocked on this page. Allow the microphone for this site and press Talk again.",
    NotFoundError: "No microphone was found. Connect one and press Talk again.",
    NotReadableError: "The microphone could not be started: another program may be using it.",
    OverconstrainedError: "No microphone here can record the way the call needs.",
  };
  const CLOSE_REASONS = {
    1006: "The connection to the server was lost.",
    4401: "Sign in to talk to a bot.",
    4404: "There is no such bot in your accounts.",
  };
  let call = null; // the live call: socket, audio context, microphone stream, worklet nodes, transcript state
  root.dataset.state = "idle";
  root.dataset.clears = "0";
  root.dataset.audioBytes = "0";

  function setState(state) {
    root.dataset.state = state;
    const busy = state === "connecting" || state === "live";
    talkButton.disabled = busy;
    hangUpButton.disabled = !busy;
  }

  function tell(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  const line = (kind, text) => kit.line(transcript, kind, text);

  function send(message) {
    if (call && call.socket.readyState === WebSocket.OPEN) call.socket.send(JSON.stringify(message));
  }

  const ms = (value) => (value === null || value === undefined ? "–" : Math.round(value));

  const events = {
    ready(e) {
      call.started = true;
      root.dataset.callId = e.call_id;
      setState("live");
      tell("Connected. Speak whenever you like.");
    },
    checkpoint(e) { call.playback.port.postMessage({ checkpoint: e.name }); },
    clear() { call.playback.port.postMessage({ clear: true }); },
    caller(e) {
      if (!call.caller) call.caller = { div: line("caller", ""), said: "" };
      const caller = call.caller;
      if (e.final) caller.said = (caller.said + " " + e.text).trim();
      caller.div.firstChild.textContent = e.final ? caller.said : (caller.said + " " + e.text).trim();
      caller.div.classList.toggle("interim", !e.final);
      call.bot = null;
    },
    bot(e) {
      if (!call.bot) {
        call.bot = line("bot", "");
        call.unsettled.push(call.bot);
      }
      call.bot.firstChild.textContent += e.text;
      call.caller = null;
      transcript.scrollTop = transcript.scrollHeight;
    },
    turn(e) {
      // A turn's record comes once it has been heard: its line then shows what was heard.
      const said = (e.bot_text || e.interrupted) && call.unsettled.shift();
      if (said) {
        if (e.interrupted) {
          said.firstChild.textContent = e.bot_text;
          said.classList.add("cut");
        }
        if (said === call.bot) call.bot = null;
      }
      const t = e.timings || {};
      const row = turns.insertRow();
      [e.index, t.latency_ms, t.stt_ms, t.llm_ms, t.tts_ms, t.platform_ms].forEach((value) => {
        row.insertCell().textContent = ms(value);
      });
      row.title = e.kind + (e.caller_text ? ": " + e.caller_text : "");
    },
    passages(e) { kit.showPassages(passages, e.passages); },
    tool_started(e) { kit.toolStarted(tools, e); },
    tool_finished(e) { kit.toolFinished(tools, e); },
    incident(e) { line("error", `${e.kind}: ${e.detail}`); },
    transfer(e) { line("error", `The bot transferred the call to ${e.to}.`); },
    end(e) { call.endReason = e.reason; call.endCode = e.code; },
  };

  function onAudio(buffer) {
    root.dataset.audioBytes = String(Number(root.dataset.audioBytes) + buffer.byteLength);
    call.playback.port.postMessage({ audio: buffer }, [buffer]);
  }

  function onPlaybackMessage(message) {
    if (message.played !== undefined) {
      send({ type: "played", name: message.played });
    } else if (message.cleared) {
      root.dataset.clears = String(Number(root.dataset.clears) + 1);
      root.dataset.lastClearDroppedMs = String(Math.round(message.droppedMs));
      send({ type: "cleared" });
    }
  }

  function finish(code) {
    if (!call) return;
    const ended = call;
    call = null;
    ended.stream?.getTracks().forEach((track) => track.stop());
    ended.context.close().catch(() => {});
    if (ended.socket && ended.socket.readyState <= WebSocket.OPEN) ended.socket.close();
    setState("ended");
    const reason = ended.endReason || CLOSE_REASONS[code] || (code ? `The call ended (${code}).` : "");
    const normal = ended.endCode === 1000 || (code === 1000 && !ended.endReason);
    tell(reason || "The call ended.", !normal);
  }

  function fail(message) {
    finish();
    tell(message, true);
  }

  async function talk() {
    if (call) return;
    transcript.innerHTML = "";
    turns.innerHTML = "";
    tools.innerHTML = "";
    passages.innerHTML = "";
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
      tell("This browser cannot capture audio here: it needs a recent browser and a secure page (https or localhost).", true);
      return;
    }
    setState("connecting");
    // Created in the click itself, so that the browser lets it play sound.
    call = { context: new AudioContext({ latencyHint: "interactive" }), started: false, socket: null, unsettled: [] };
    tell("Asking for the microphone…");
    try {
      call.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
    } catch (error) {
      fail(MICROPHONE_PROBLEMS[error.name] || `The microphone could not be opened (${error.name}).`);
      return;
    }
    if (!call) return; // hung up meanwhile
    const context = call.context;
    try {
      await context.audioWorklet.addModule(root.dataset.captureWorklet);
      await context.audioWorklet.addModule(root.dataset.playbackWorklet);
    } catch (error) {
      fail(`The audio processing could not start (${error.name}).`);
      return;
    }
    if (!call) return;
    call.capture = new AudioWorkletNode(context, "pcm16-capture", {
      numberOfOutputs: 0, processorOptions: { targetRate: FORMAT.sample_rate, frameMs: 20 },
    });
    call.playback = new AudioWorkletNode(context, "pcm16-playback", {
      numberOfInputs: 0, outputChannelCount: [1],
      processorOptions: { sourceRate: FORMAT.sample_rate, targetMs: JITTER_TARGET_MS },
    });
    context.createMediaStreamSource(call.stream).connect(call.capture);
    call.playback.connect(context.destination);
    call.playback.port.onmessage = (event) => onPlaybackMessage(event.data);
    if (context.state === "suspended") await context.resume();

    const socket = kit.openSocket(root.dataset.socket);
    socket.binaryType = "arraybuffer";
    call.socket = socket;
    call.capture.port.onmessage = (event) => {
      if (call && call.started && socket.readyState === WebSocket.OPEN) socket.send(event.data);
    };
    socket.onopen = () => {
      tell("Connecting…");
      socket.send(JSON.stringify({ type: "start", format: FORMAT }));
    };
    socket.onmessage = (message) => {
      if (!call) return;
      if (typeof message.data === "string") {
        const event = JSON.parse(message.data);
        (events[event.type] || (() => {}))(event);
      } else {
        onAudio(message.data);
      }
    };
    socket.onclose = (event) => finish(event.code);
  }

  function hangUp() {
    if (!call) return;
    tell("Hanging up…");
    if (call.socket && call.socket.readyState === WebSocket.OPEN) {
      send({ type: "hangup" });
      const hungUp = call;
      setTimeout(() => { if (call === hungUp) finish(1000); }, 2000); // the server closes the socket first
    } else {
      finish();
    }
  }

  talkButton.addEventListener("click", talk);
  hangUpButton.addEventListener("click", hangUp);
  window.addEventListener("pagehide", hangUp);
})();
