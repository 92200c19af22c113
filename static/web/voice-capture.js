// AudioWorklet: the microphone as 16-bit PCM at 16 kHz, in 20 ms frames posted to the page.
// The device usually runs at 44.1 or 48 kHz: each output sample is the average of the input samples it
// stands for (a box filter, enough to keep speech free of aliasing); a slower device is interpolated.
class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions || {};
    const targetRate = settings.targetRate || 16000;
    this.step = sampleRate / targetRate; // input samples per output sample
    this.frameLength = Math.round((targetRate * (settings.frameMs || 20)) / 1000);
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.sum = 0; // box filter: input samples since the last output one
    this.count = 0;
    this.until = this.step; // input samples still to take for the next output sample
    this.position = 0; // interpolation: where the next output sample falls in the current block
    this.previous = 0; // interpolation: the previous block's last sample
  }

  emit(value) {
    const sample = Math.round(Math.max(-1, Math.min(1, value)) * 32767);
    this.frame[this.filled++] = sample;
    if (this.filled === this.frameLength) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // transferred: the array is emptied
      this.frame = new Int16Array(this.frameLength);
      this.filled = 0;
    }
  }

  decimate(input) {
    for (let i = 0; i < input.length; i++) {
      this.sum += input[i];
      this.count += 1;
      this.until -= 1;
      if (this.until <= 0) {
        this.emit(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
        this.until += this.step;
      }
    }
  }

  interpolate(input) {
    let position = this.position;
    while (position < input.length - 1) {
      const index = Math.floor(position);
      const before = index < 0 ? this.previous : input[index];
      this.emit(before + (input[index + 1] - before) * (position - index));
      position += this.step;
    }
    this.position = position - input.length;
    this.previous = input[input.length - 1];
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (input && input.length) {
      if (this.step >= 1) this.decimate(input);
      else this.interpolate(input);
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
