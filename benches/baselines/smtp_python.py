"""SMTP baseline: Python's smtplib builds and sends N personalised ~4 KB multipart/alternative messages.

usage: python smtp_python.py [--host 127.0.0.1] [--port 2525] [--n 10000] [--procs 1]
  --procs P   split the N messages over P processes, one SMTP connection each

Start a sink first, on loopback only: Postfix's `smtp-sink -c 127.0.0.1:2525 1000` (Debian package
postfix; scripts/bench-send.sh unpacks and starts it) or `python -m aiosmtpd -n -l 127.0.0.1:2525`.

Prints one JSON line: tool, n, procs, seconds (wall time of building and sending everything) and
messages_per_s.
"""
import argparse
import json
import multiprocessing as mp
import smtplib
import time
from email.message import EmailMessage

TEXT = "Hi {name},\n\nHere are this week's picks for you.\n" + "Product line with some description text. " * 35
HTML = ("<html><body><p>Hi {name},</p>"
        + "<div class='prod'><a href='https://shop.example.com/p/1'>Product &amp; Co.</a> 19.99 EUR</div>" * 20
        + "</body></html>")


def build(i):
    """Message i: a text part and an HTML alternative, personalised with the recipient's name."""
    msg = EmailMessage()
    msg["From"] = "news@shop.example.com"
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = f"Your weekly picks #{i}"
    msg["Message-ID"] = f"<{i}.wk47@shop.example.com>"
    msg.set_content(TEXT.format(name=f"user{i}"))
    msg.add_alternative(HTML.format(name=f"user{i}"), subtype="html")
    return msg


def send_range(host, port, lo, hi):
    """Builds and sends messages lo..hi over one connection."""
    smtp = smtplib.SMTP(host, port)
    smtp.ehlo("bench.local")
    for i in range(lo, hi):
        smtp.send_message(build(i))
    smtp.quit()


def main():
    ap = argparse.ArgumentParser(description="smtplib build + send baseline")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--procs", type=int, default=1)
    args = ap.parse_args()

    per_proc = args.n // args.procs
    procs = [mp.Process(target=send_range, args=(args.host, args.port, j * per_proc, (j + 1) * per_proc))
             for j in range(args.procs)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - t
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a sending process failed")
    sent = per_proc * args.procs
    print(json.dumps({
        "tool": "smtplib",
        "n": sent,
        "procs": args.procs,
        "seconds": round(seconds, 3),
        "messages_per_s": round(sent / seconds),
    }))


if __name__ == "__main__":
    main()
