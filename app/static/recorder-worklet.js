// AudioWorklet: microphone -> mono -> low-pass -> target rate -> 16-bit PCM chunks for /v1/stream.
// The main thread sets the target rate from the server's `ready` message: {targetRate: 16000}.
// {flush: true} posts what is left, then {flushed: true}.

class Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.target = 0;
    this.port.onmessage = (event) => {
      if (event.data.targetRate) this.configure(event.data.targetRate);
      if (event.data.flush) this.flush();
    };
  }

  configure(target) {
    this.target = target;
    this.step = sampleRate / target; // input samples per output sample
    const half = target < sampleRate ? 32 : 0;
    const cutoff = 0.46 * Math.min(1, target / sampleRate); // cycles per input sample, below the new Nyquist
    const taps = new Float32Array(2 * half + 1);
    let sum = 0;
    for (let i = 0; i < taps.length; i++) {
      const x = i - half;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      const window = half ? 0.42 - 0.5 * Math.cos((Math.PI * i) / half) + 0.08 * Math.cos((2 * Math.PI * i) / half) : 1; // Blackman
      taps[i] = sinc * window;
      sum += taps[i];
    }
    this.taps = taps.map((t) => t / sum);
    this.history = new Float32Array(taps.length - 1); // last inputs, for the filter across blocks
    this.previous = 0; // last filtered sample, for interpolation across blocks
    this.position = 1; // where the next output sample falls, in the current block's filtered samples (1 = first new one)
    this.chunk = new Int16Array(Math.round(target / 10)); // 100 ms frames
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!this.target || !input || input.length === 0) return true;
    const n = input[0].length;
    const samples = new Float32Array(this.history.length + n);
    samples.set(this.history);
    for (const channel of input) for (let i = 0; i < n; i++) samples[this.history.length + i] += channel[i] / input.length;
    this.history = samples.slice(n);
    const filtered = new Float32Array(n + 1); // filtered[0] is the previous block's last sample
    filtered[0] = this.previous;
    for (let k = 0; k < n; k++) {
      let acc = 0;
      for (let j = 0; j < this.taps.length; j++) acc += this.taps[j] * samples[k + j];
      filtered[k + 1] = acc;
    }
    this.previous = filtered[n];
    while (Math.floor(this.position) + 1 <= n) {
      const i = Math.floor(this.position);
      const value = filtered[i] + (this.position - i) * (filtered[i + 1] - filtered[i]);
      this.chunk[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
      if (this.filled === this.chunk.length) this.post();
      this.position += this.step;
    }
    this.position -= n;
    return true;
  }

  post() {
    const out = this.chunk.slice(0, this.filled);
    this.port.postMessage(out.buffer, [out.buffer]);
    this.filled = 0;
  }

  flush() {
    if (this.filled) this.post();
    this.port.postMessage({ flushed: true });
  }
}

registerProcessor("downsampler", Downsampler);
