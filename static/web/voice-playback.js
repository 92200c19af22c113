// AudioWorklet: the bot's voice (16-bit PCM at 16 kHz) played at the device's rate through a small jitter buffer.
// Playback starts once `targetMs` of audio is queued, or at once when a segment is complete (a checkpoint follows
// it), and starts over the same way after running dry. Checkpoints ride in the queue: when playback passes one the
// page is told, and acknowledges it to the server, which so learns what was heard. `clear` drops everything queued
// at once (barge-in); the checkpoints dropped with it are never acknowledged.
class Pcm16Playback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions || {};
    this.step = (settings.sourceRate || 16000) / sampleRate; // source samples per output sample
    this.target = Math.round(((settings.targetMs || 80) * sampleRate) / 1000);
    this.queue = []; // {samples: Float32Array at the device rate} or {checkpoint: name}
    this.head = 0; // read position in queue[0].samples
    this.queued = 0; // output samples waiting
    this.playing = false;
    this.position = 0; // resampler: where the next output sample falls in the incoming chunk
    this.previous = 0; // resampler: the last sample of the previous chunk
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.audio) {
      const samples = this.resample(new Int16Array(message.audio));
      this.queue.push({ samples });
      this.queued += samples.length;
    } else if (message.checkpoint !== undefined) {
      this.queue.push({ checkpoint: message.checkpoint });
    } else if (message.clear) {
      const droppedMs = (this.queued * 1000) / sampleRate;
      this.queue = [];
      this.head = 0;
      this.queued = 0;
      this.playing = false;
      this.port.postMessage({ cleared: true, droppedMs });
    }
  }

  resample(chunk) {
    const out = new Float32Array(Math.max(0, Math.ceil((chunk.length - 1 - this.position) / this.step)));
    let position = this.position;
    let written = 0;
    while (position < chunk.length - 1 && written < out.length) {
      const index = Math.floor(position);
      const before = index < 0 ? this.previous : chunk[index];
      out[written++] = (before + (chunk[index + 1] - before) * (position - index)) / 32768;
      position += this.step;
    }
    this.position = position - chunk.length;
    this.previous = chunk[chunk.length - 1];
    return written === out.length ? out : out.subarray(0, written);
  }

  segmentComplete() {
    return this.queue.some((item) => item.checkpoint !== undefined);
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.queued > 0 && (this.queued >= this.target || this.segmentComplete())) {
      this.playing = true;
    }
    let written = 0;
    while (written < out.length && this.queue.length) {
      const item = this.queue[0];
      if (item.checkpoint !== undefined) {
        this.port.postMessage({ played: item.checkpoint }); // everything before it has been played
        this.queue.shift();
        continue;
      }
      if (!this.playing) break;
      const count = Math.min(out.length - written, item.samples.length - this.head);
      out.set(item.samples.subarray(this.head, this.head + count), written);
      written += count;
      this.head += count;
      this.queued -= count;
      if (this.head === item.samples.length) {
        this.queue.shift();
        this.head = 0;
      }
    }
    out.fill(0, written);
    if (this.playing && this.queued === 0) this.playing = false; // ran dry: buffer again before going on
    return true;
  }
}

registerProcessor("pcm16-playback", Pcm16Playback);
