"""Run faster-whisper on WAV files, for `assist-eval asr-bench` and `assist-eval asr`.

Reads 16 kHz mono 16-bit WAV files with the standard library (so both engines
see the same samples, and decoding is not timed), loads the CTranslate2 model
once (timed on its own), transcribes every file (each timed on its own) and
prints one JSON object on stdout, the same shape `assist-eval asr-run` prints:

    {"engine", "load_s", "peak_rss_kb", "threads",
     "results": [{"file", "duration_s", "wall_s", "language", "text"}]}

Peak memory is the process high-water mark (getrusage ru_maxrss, KiB on Linux).
"""

import argparse
import json
import resource
import sys
import time
import wave

import numpy as np


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: need 16 kHz mono 16-bit PCM")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="CTranslate2 Whisper directory")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--language", default=None, help="force a language (default: detect)")
    p.add_argument("--initial-prompt", default=None)
    p.add_argument(
        "--utterance",
        action="store_true",
        help="each file is one live utterance: Silero VAD filter on, greedy, no timestamps",
    )
    p.add_argument("files", nargs="+")
    args = p.parse_args()

    from faster_whisper import WhisperModel

    started = time.perf_counter()
    model = WhisperModel(
        args.model,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=1,
    )
    load_s = time.perf_counter() - started

    results = []
    for path in args.files:
        audio = read_wav(path)
        started = time.perf_counter()
        if args.utterance:
            segments, info = model.transcribe(
                audio,
                language=args.language,
                beam_size=args.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                initial_prompt=args.initial_prompt,
                without_timestamps=True,
                vad_filter=True,
            )
        else:
            segments, info = model.transcribe(
                audio,
                language=args.language,
                beam_size=args.beam_size,
                best_of=5,
                temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                compression_ratio_threshold=2.4,
                log_prob_threshold=-1.0,
                no_speech_threshold=0.6,
                condition_on_previous_text=True,
                initial_prompt=args.initial_prompt,
                without_timestamps=False,
                vad_filter=False,
            )
        # `segments` is a generator: the work happens while it is consumed.
        texts = [s.text.strip() for s in segments]
        wall_s = time.perf_counter() - started
        sep = "" if info.language == "zh" else " "
        results.append(
            {
                "file": path,
                "duration_s": len(audio) / 16000.0,
                "wall_s": wall_s,
                "language": info.language,
                "text": sep.join(t for t in texts if t),
            }
        )
    out = {
        "engine": "faster-whisper",
        "load_s": load_s,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "threads": args.threads,
        "results": results,
    }
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
