"""Silero VAD on onnxruntime, frame by frame: the peer of `assist-eval vad-agree`.

Runs in its own venv (~/.cache/assist/venvs/silero-vad: onnxruntime and numpy),
never in the product. Does what the silero-vad package's `OnnxWrapper` does for
each frame, and what its `audio_forward` does for a whole clip: the clip is
zero-padded to whole frames (512 samples at 16 kHz, 256 at 8 kHz); each frame
is run with the previous window's last 64 (16 kHz) or 32 (8 kHz) samples in
front of it and the LSTM state carried over; both start at zero.

Usage: silero_ort.py JOB.json > RESULT.json, where the job is
  {"rounds": N, "runs": [{"model": "x.onnx", "clip": "c.f32", "rate": 16000}, ...]}
and each clip is raw little-endian float32 mono samples. Prints
  {"onnxruntime": VERSION, "runs": [{"model", "clip", "rate", "probs": [...],
   "seconds": best wall time of the clip over N rounds, one thread}]}.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def probs_of(session, x, rate):
    n = 512 if rate == 16000 else 256
    ctx = 64 if rate == 16000 else 32
    if len(x) % n:
        x = np.concatenate([x, np.zeros(n - len(x) % n, dtype=np.float32)])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, ctx), dtype=np.float32)
    sr = np.array(rate, dtype=np.int64)
    out = []
    for i in range(0, len(x), n):
        window = np.concatenate([context, x[None, i : i + n]], axis=1)
        prob, state = session.run(None, {"input": window, "state": state, "sr": sr})
        context = window[:, -ctx:]
        out.append(float(prob[0, 0]))
    return out


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sessions = {}
    runs = []
    for run in job["runs"]:
        path = run["model"]
        if path not in sessions:
            sessions[path] = ort.InferenceSession(
                path, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        x = np.fromfile(run["clip"], dtype="<f4")
        best, probs = None, None
        for _ in range(max(1, job.get("rounds", 1))):
            t = time.perf_counter()
            probs = probs_of(sessions[path], x, run["rate"])
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        runs.append({**run, "probs": probs, "seconds": best})
    json.dump({"onnxruntime": ort.__version__, "runs": runs}, sys.stdout)


if __name__ == "__main__":
    main()
