"""The demo page (`GET /`, `/demo`): its files, and the page itself in a real headless Chromium.

The browser test plays a WAV file through Chromium's fake microphone into the page, which runs
its AudioWorklet, downsamples to the rate of the server's `ready` message and streams to
`WS /v1/stream` on a running server. What it proves:

- the page works end to end in a real browser: microphone capture, the worklet, the
  WebSocket protocol (config, binary frames, `eof` from the stop button, clean close);
- the text the page shows is exactly the text of the `final` messages it received;
- those messages are exactly what the server answers for the audio the page sent: the test
  replays the page's frames, byte for byte and in the same pieces, into `/v1/stream` and
  compares every message;
- the audio the page sent is the file's audio at the model rate: quarter seconds of it line up
  with the file (normalised cross-correlation near 1, which a wrong rate or a broken
  downsampler would not give) and the sample count matches the time recorded.

It does not prove the transcript is that of the whole file: the fake microphone loops the file
from wherever capture starts.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.test_realtime import live_server
from tests.helpers import speechlike

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
READ_SENT = """return window.demo.sent.map((bytes) => { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); });"""


def test_page_and_static_files(client: TestClient) -> None:
    for path in ("/", "/demo"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'id="record"' in page.text and "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")  # no CDN
    for name in ("app.js", "recorder-worklet.js"):
        script = client.get(f"/static/{name}")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "registerProcessor" in client.get("/static/recorder-worklet.js").text
    for missing in ("/static/__init__.py", "/static/..%2F..%2Fconfig.py", "/static/nothing.js"):
        assert client.get(missing).status_code == 404


def test_page_is_public_when_api_is_protected(settings: Settings) -> None:
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"api_keys": ["k1"]}))) as c:
        assert c.get("/demo").status_code == 200 and c.get("/static/app.js").status_code == 200
        assert c.post("/v1/transcribe", content=b"x").status_code == 401


def replay(settings: Settings, chunks: list[bytes]) -> list[dict]:
    """The page's frames into `/v1/stream` again, with the config the page sends."""
    from app.main import create_app

    with TestClient(create_app(settings)) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "config", "encoding": "pcm_s16le", "channels": 1}))
        messages = [json.loads(ws.receive_text())]
        for chunk in chunks:
            ws.send_bytes(chunk)
        ws.send_text('{"type": "eof"}')
        while messages[-1]["type"] != "eof":
            messages.append(json.loads(ws.receive_text()))
    return messages


def alignments(sent: np.ndarray, reference: np.ndarray, window: int = 4000) -> list[float]:
    """For each quarter second of `sent`, the best normalised cross-correlation with the looping reference.

    Short windows, because the fake microphone may skip a few milliseconds (at its loop point or
    under load), which shifts the alignment.
    """
    looped = np.tile(reference, 3)
    best = []
    for start in range(0, len(sent) - window, window):
        piece = sent[start : start + window]
        n = len(looped) + window
        corr = np.fft.irfft(np.fft.rfft(looped, n) * np.conj(np.fft.rfft(piece, n)), n)[: len(looped) - window]
        energy = np.sqrt(np.convolve(looped**2, np.ones(window), "valid")[: len(corr)] * np.sum(piece**2))
        best.append(float(np.max(corr / np.maximum(energy, 1e-9))))
    return best


def test_microphone_streaming_in_chromium(settings: Settings, tmp_path: Path) -> None:
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not found]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium, the `test` extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    reference = speechlike(2.0, 16000, seed=4)
    wav = tmp_path / "speech.wav"
    sf.write(wav, reference, 16000, subtype="PCM_16")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    with live_server(settings) as address:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.set_script_timeout(20)
            driver.get(f"http://{address}/demo?capture=1")
            driver.find_element(By.ID, "record").click()
            wait = WebDriverWait(driver, 15, poll_frequency=0.1)
            wait.until(lambda d: d.execute_script("return window.demo.sent.length > 0"))
            started = time.monotonic()
            wait.until(lambda d: d.execute_script("return window.demo.sent.reduce((n, b) => n + b.length, 0)") >= 2 * 16000 * 3)  # 3 s at 16 kHz
            recorded = time.monotonic() - started
            driver.find_element(By.ID, "stop").click()
            wait.until(lambda d: d.execute_script("return window.demo.done"))
            messages = driver.execute_script("return window.demo.messages")
            finals = driver.execute_script("return window.demo.finals")
            shown = driver.find_element(By.ID, "finals").text
            chunks = [base64.b64decode(c) for c in driver.execute_script(READ_SENT)]
            status = driver.find_element(By.ID, "status").text
        finally:
            driver.quit()
    assert messages[0]["type"] == "ready" and messages[0]["sample_rate"] == 16000 and messages[-1] == {"type": "eof"}
    assert status == "closed (1000)"
    assert finals and finals == [m["text"] for m in messages if m["type"] == "final" and m["text"]]
    assert shown == "\n".join(finals)
    assert replay(settings, chunks) == messages
    sent = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768
    assert len(sent) / 16000 == pytest.approx(recorded, rel=0.5)  # the model rate, in real time
    assert np.median(alignments(sent, reference)) > 0.95  # the file's waveform, resampled faithfully
