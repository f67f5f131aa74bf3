#!/usr/bin/env bash
# Rebuilds sample-call-en.ogg: a two-party work-phone call, rep on the left
# channel, customer on the right, telephone band (8 kHz, 300–3400 Hz), spoken
# by espeak-ng. Used by `assist demo` and the real-weight call tests.
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)/sample-call-en.ogg"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
say() { espeak-ng -v "$1" -s "$2" -w "$3" "$4"; }
say en-us 150 r1.wav "Hello, this is Anna from Cloud CRM. I am calling about your trial account."
say en-us+f3 155 c1.wav "Hi Anna. Honestly, the price is too high for our team of twenty people."
say en-us 150 r2.wav "I understand. If you pay yearly, each seat costs nineteen hundred and eighty yuan, twenty percent less than monthly. Between you and me, pay me directly and we keep it off the books."
say en-us+f3 155 c2.wav "Can you give me a rebate if I sign this week?"
for f in r1 c1 r2 c2; do sox "$f.wav" -r 8000 -c 1 -b 16 "$f.8k.wav" highpass 300 lowpass 3400; done
sox -n -r 8000 -c 1 -b 16 gap.wav trim 0 0.6
sil() { sox -n -r 8000 -c 1 -b 16 "$2" trim 0 "$(soxi -D "$1")"; }
for f in r1 c1 r2 c2; do sil "$f.8k.wav" "s_$f.wav"; done
sox r1.8k.wav gap.wav s_c1.wav gap.wav r2.8k.wav gap.wav s_c2.wav gap.wav left.wav
sox s_r1.wav gap.wav c1.8k.wav gap.wav s_r2.wav gap.wav c2.8k.wav gap.wav right.wav
sox -M left.wav right.wav call.wav
sox call.wav -C 3 "$out"
echo "wrote $out"
