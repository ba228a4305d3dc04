// The demo page: microphone -> AudioWorklet (downsampled to the model rate) -> WS /v1/stream;
// a file -> POST /v1/transcribe. No build step, no dependencies.
// State for scripts and tests: window.demo = {messages, finals, sent (with ?capture=1), done}.
"use strict";

const $ = (id) => document.getElementById(id);
const capture = new URLSearchParams(location.search).has("capture");
window.demo = { messages: [], finals: [], sent: [], done: false };
let session = null;

function apiKey() {
  return $("api-key").value.trim();
}

function log(line) {
  const el = $("log");
  el.textContent += line + "\n";
  el.scrollTop = el.scrollHeight;
}

function setStatus(text) {
  $("status").textContent = text;
}

async function loadModels() {
  try {
    const headers = apiKey() ? { Authorization: "Bearer " + apiKey() } : {};
    const response = await fetch("/v1/models", { headers });
    if (!response.ok) return;
    const select = $("model");
    select.length = 1;
    for (const model of (await response.json()).data) {
      if (model.kind !== "acoustic") continue;
      const option = new Option(model.id + (model.default ? " (default)" : ""), model.id);
      select.add(option);
    }
  } catch (error) {
    log("models: " + error);
  }
}

function onMessage(event) {
  const message = JSON.parse(event.data);
  window.demo.messages.push(message);
  log(event.data);
  if (message.type === "ready") {
    session.node.port.postMessage({ targetRate: message.sample_rate });
    setStatus("recording: " + message.model + " at " + message.sample_rate + " Hz");
  } else if (message.type === "partial") {
    $("partial").textContent = message.text;
  } else if (message.type === "final") {
    $("partial").textContent = "";
    if (message.text) {
      window.demo.finals.push(message.text);
      $("finals").textContent = window.demo.finals.join("\n");
    }
  } else if (message.type === "error") {
    setStatus("error: " + message.code + ": " + message.message);
  }
}

async function record() {
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    setStatus("this page needs a secure context (https or localhost) and AudioWorklet for the microphone");
    return;
  }
  $("record").disabled = true;
  window.demo = { messages: [], finals: [], sent: [], done: false };
  $("finals").textContent = "";
  $("partial").textContent = "";
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const context = new AudioContext();
    await context.audioWorklet.addModule("/static/recorder-worklet.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "downsampler", { numberOfOutputs: 0 });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const protocols = apiKey() ? ["bearer", apiKey()] : [];
    const ws = new WebSocket(scheme + "//" + location.host + "/v1/stream", protocols);
    session = { stream, context, source, node, ws, ended: false };
    node.port.onmessage = (event) => {
      if (session === null || session.ended || ws.readyState !== WebSocket.OPEN) return;
      if (event.data.flushed) {
        session.ended = true; // nothing after eof
        ws.send(JSON.stringify({ type: "eof" }));
        return;
      }
      ws.send(event.data);
      if (capture) window.demo.sent.push(new Uint8Array(event.data));
    };
    ws.onopen = () => {
      const config = { type: "config", encoding: "pcm_s16le", channels: 1 }; // sample_rate left out: the model's own
      if ($("model").value) config.model = $("model").value;
      ws.send(JSON.stringify(config));
      source.connect(node);
      setStatus("connecting");
      $("stop").disabled = false;
    };
    ws.onmessage = onMessage;
    ws.onclose = (event) => {
      window.demo.done = true;
      setStatus("closed (" + event.code + ")");
      release();
    };
    ws.onerror = () => setStatus("connection failed");
  } catch (error) {
    setStatus("microphone: " + error);
    release();
  }
}

function stop() {
  $("stop").disabled = true;
  if (!session) return;
  setStatus("finishing");
  session.source.disconnect();
  session.stream.getTracks().forEach((track) => track.stop());
  session.node.port.postMessage({ flush: true }); // the worklet sends its last samples, then the page sends eof
}

function release() {
  if (session) {
    session.stream.getTracks().forEach((track) => track.stop());
    session.context.close().catch(() => {});
    session = null;
  }
  $("record").disabled = false;
  $("stop").disabled = true;
}

async function upload() {
  const file = $("file").files[0];
  if (!file) {
    $("file-status").textContent = "choose a file first";
    return;
  }
  $("file-status").textContent = "transcribing " + file.name + " ...";
  $("file-result").textContent = "";
  const form = new FormData();
  form.append("file", file);
  const query = $("model").value ? "?model=" + encodeURIComponent($("model").value) : "";
  const headers = apiKey() ? { Authorization: "Bearer " + apiKey() } : {};
  try {
    const response = await fetch("/v1/transcribe" + query, { method: "POST", body: form, headers });
    const body = await response.json();
    if (!response.ok) {
      $("file-status").textContent = "error " + response.status + ": " + (body.error ? body.error.message : JSON.stringify(body));
      return;
    }
    $("file-status").textContent = body.duration.toFixed(2) + " s of audio, model " + body.model;
    $("file-result").textContent = body.text;
  } catch (error) {
    $("file-status").textContent = "error: " + error;
  }
}

$("record").addEventListener("click", record);
$("stop").addEventListener("click", stop);
$("upload").addEventListener("click", upload);
$("api-key").addEventListener("change", loadModels);
loadModels();
