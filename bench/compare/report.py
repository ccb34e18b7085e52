"""Writes BENCHMARKS.md from the files bench/compare/run.sh leaves in its out/ directory.

    python3 report.py OUT_DIR BENCHMARKS_MD
"""

import base64
import json
import statistics
import sys
from pathlib import Path

IMPLS = [  # key, column title
    ("core", "ours"),
    ("ts", "TypeScript"),
    ("py", "Python"),
    ("qstash-rs", "qstash-rs"),
]

# Why an implementation disagrees with the expected verdict: which check it skips or does
# differently. Read from each implementation's source (versions as pinned in run.sh); a
# disagreement without a note here is listed with the implementation's own message.
NOTES = {
    "ts": [
        (("signature with padding", "signature in standard base64"),
         "jose decodes segments with Node's `Buffer.from(..., 'base64url')`, which accepts `=` "
         "padding and the `+`/`/` alphabet, so one token has several spellings. Not a forgery: "
         "the MAC bytes are the same."),
        (("duplicate sub", "duplicate exp"),
         "`JSON.parse` keeps the last of duplicate claims; nothing refuses duplicates."),
        (("missing exp", "missing nbf"),
         "jose checks `exp`/`nbf` only when present and the receiver does not require them: a "
         "token without `exp` never expires."),
        (("exp as 1700000300.5",),
         "jose accepts any JSON number as a time."),
        (("jti as 7",),
         "`jti` is not looked at (the core's table requires a string when present)."),
        (("extra: alg HS384 with a real HS384 MAC", "extra: alg HS512 with a real HS512 MAC"),
         "`jwtVerify` is called without `algorithms`, so jose accepts every HMAC algorithm for "
         "the key: the token's own header picks HS384/HS512. The key is still needed."),
        (("binary body",),
         "the API takes the body as a string (hashed as UTF-8): a body that is not UTF-8 "
         "cannot be passed."),
    ],
    "py": [
        (("R1_at_exp_tol1", "R1_exp_plus_5_tol10", "R1_nbf_minus_5_tol10"),
         "`clock_tolerance` is passed to PyJWT inside `options` as `\"leeway\"`, which PyJWT "
         "ignores (leeway is a keyword argument): the tolerance has no effect (known bug, also "
         "recorded in the vector file)."),
        (("signature with padding",),
         "PyJWT's base64url decoding accepts trailing `=` on the signature."),
        (("duplicate sub", "duplicate exp"),
         "`json.loads` keeps the last of duplicate claims."),
        (("exp as \"1700000300\"", "exp as 1700000300.5", "nbf as \"1700000000\"", "nbf as true",
          "iat as \"1700000000\""),
         "PyJWT converts times with `int(...)`: numeric strings, fractions and booleans pass."),
        (("aud of another type",),
         "PyJWT validates `aud` when present and no audience is configured: a non-empty `aud` "
         "is refused (QStash sends `\"aud\":\"\"`, so real tokens pass). The message shown is "
         "the next key's failure: the receiver reports its last attempt."),
        (("binary body",),
         "the API takes the body as a `str` (hashed as UTF-8): a body that is not UTF-8 cannot "
         "be passed."),
    ],
    "qstash-rs": [
        (lambda c, v: v == "reject" and c["expect"] == "ok" and has_aud(c["token"]),
         "every token with an `aud` claim is refused: jsonwebtoken 9 validates `aud` whenever "
         "the token has one, and qstash-rs configures no audience (`InvalidAudience`). QStash "
         "puts `\"aud\":\"\"` in every token, so qstash-rs 0.6.0 refuses every real "
         "delivery. The message shown is usually `InvalidSignature`, because the receiver "
         "returns the error of its last attempt (the next key); where the next key is the right "
         "one (`R1_keys_swapped_next_matches`, `signed with the next key`) `InvalidAudience` "
         "shows. The `extra: no aud claim` row is the same token without `aud`: accepted."),
        (("no aud, iat or jti",),
         "its claims struct requires `iat` (as `u64`) and `jti`, which QStash's receivers do "
         "not need."),
        (("extra: no aud claim, at exp",),
         "jsonwebtoken 9 refuses only when `exp < now - leeway`: a token is still accepted in "
         "the second `now == exp` (one second past the official receivers' window)."),
        (("extra: no aud claim, a second before nbf",),
         "`nbf` is never checked: jsonwebtoken's `validate_nbf` defaults to false and qstash-rs "
         "does not turn it on."),
    ],
}


def load(path):
    with open(path) as f:
        return json.load(f)


def has_aud(token):
    """Whether a token's claims carry `aud`."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return isinstance(claims, dict) and "aud" in claims
    except (IndexError, ValueError):
        return False


def note_for(impl, case, verdict):
    for match, text in NOTES.get(impl, []):
        if callable(match) and match(case, verdict):
            return text
        if not callable(match) and case["name"] in match:
            return text
    return None


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} µs"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main(out_dir, target):
    out = Path(out_dir)
    env = load(out / "env.json")
    cases = load(out / "cases.json")
    checks = {k: load(out / f"check-{k}.json") for k, _ in IMPLS}
    verdicts = {k: {r["name"]: r for r in checks[k]["results"]} for k, _ in IMPLS}
    rounds = env["rounds"]
    times = {k: [load(out / f"time-{k}-{r}.json") for r in range(1, rounds + 1)] for k, _ in IMPLS}
    pinned = [out / f"time-ts-pinned-{r}.json" for r in range(1, rounds + 1)]
    if all(p.exists() for p in pinned):
        times["ts-pinned"] = [load(p) for p in pinned]

    lines = []
    w = lines.append
    w("# Benchmarks: QStash receivers side by side")
    w("")
    w("Written by `bench/compare/run.sh` from one run; do not edit by hand. Every number below "
      "was measured in that run, on one machine, one implementation at a time.")
    w("")
    w(f"- date: {env['date']}")
    w(f"- machine: {env['cpu']}, {env['cores']} cores shared with other work "
      f"(load average before/after: {env['load_before']} / {env['load_after']}), "
      f"SHA-NI: {'yes' if env['sha_ni'] else 'no'}")
    w(f"- toolchains: {env['rustc']}; Node.js {env['node']}; {env['python']}")
    w("- implementations:")
    for k, title in IMPLS:
        w(f"  - {title}: {checks[k]['implementation']}; clock for the verdicts: {checks[k]['clock']}")
    w("")

    # Speed.
    w("## Speed: one verification of a valid token with a 1 KiB body")
    w("")
    w(f"Each implementation verifies the same kind of token (HS256, QStash's claims, signed "
      f"with the current key, fresh for each measurement), the same 1024-byte body and the "
      f"whole URL, through its public API as a server would call it (system clock, tolerance "
      f"0). Per measurement: 300 ms of warm-up, then batches of about 2 ms for "
      f"{env['millis']} ms; the time per call is the median over the batches. "
      f"Rounds: {rounds}, each timing every implementation once, in turn (under "
      f"`nice -n {env['nice']}`); the table gives the median of the round medians.")
    w("")
    w("| implementation | median per verify | round medians | batch p10–p90 (all rounds) | verifies/s (1 core) | vs ours |")
    w("|---|---:|---|---|---:|---:|")
    core_median = statistics.median(t["median_ns"] for t in times["core"])
    rows = list(IMPLS)
    if "ts-pinned" in times:
        rows.insert(2, ("ts-pinned", "TypeScript, process pinned to one CPU"))
    for k, title in rows:
        medians = [t["median_ns"] for t in times[k]]
        median = statistics.median(medians)
        p10 = min(t["p10_ns"] for t in times[k])
        p90 = max(t["p90_ns"] for t in times[k])
        ratio = "1.00x" if k == "core" else f"{median / core_median:.1f}x slower"
        label = checks.get(k, checks["ts"])["implementation"]
        w(f"| {title}: {label} | {fmt_ns(median)} | "
          f"{', '.join(fmt_ns(m) for m in medians)} | {fmt_ns(p10)} – {fmt_ns(p90)} | "
          f"{1e9 / median:,.0f} | {ratio} |")
    w("")
    w("The TypeScript receiver is `async`; its time includes awaiting each call. It hashes the "
      "body with WebCrypto's `subtle.digest`, which Node runs on libuv's thread pool, so each "
      "verification hands work to another thread and back, and its time depends on where the "
      "scheduler puts those threads. In separate trials on this machine, unpinned runs were "
      "about twice as slow while the other CPU was idle as while it was busy (likely the "
      "wake-up of an idle CPU), and runs pinned to one CPU (`taskset -c 0`, the pinned row) "
      "stayed at the faster figure either way. Which of the two rows a server sees depends on "
      "its load and CPU placement. Ours, Python and qstash-rs verify on the calling thread. "
      "The Python and TypeScript receivers try the current key and, on any failure, "
      "the next; all four succeed with the current key here. qstash-rs refuses every token "
      "with an `aud` claim (see below), so it is timed on the same claims without `aud`; every "
      "other implementation verifies the token exactly as QStash makes it.")
    w("")

    # Correctness.
    groups = [("real", "QStash's real tokens"), ("bypass", "the core crate's bypass table")]
    w("## Correctness")
    w("")
    w(f"{len(cases)} cases: {sum(c['group'] == 'real' for c in cases)} checks of the real "
      f"tokens QStash signed (`{env.get('vectors', 'crates/qstash-receiver/tests/data/real-tokens.json')}`, each at a "
      f"recorded instant and tolerance) and {sum(c['group'] == 'bypass' for c in cases)} cases "
      f"of the core crate's bypass table (`crates/qstash-receiver/tests/bypasses.rs`, rebuilt "
      f"by `bench/compare/cases`; its {sum(c['name'].startswith('extra:') for c in cases)} "
      f"`extra:` rows are additions: HS384/HS512 with a genuine MAC of that algorithm, and "
      f"QStash's claims without `aud`, valid and at the window's two edges). The expected verdict comes from the vector file and the table, not from any "
      f"implementation. Every implementation is given each case's instant: ours through "
      f"`verify_at`, TypeScript and Python by replacing the clock their JWT library reads, "
      f"qstash-rs (which reads the system clock) by running it under `faketime` "
      f"{'(available in this run)' if env['faketime'] else '(NOT available in this run: its time-dependent verdicts are n/a)'}.")
    w("")
    w("| implementation | agrees | accepts what must be refused | refuses what must be accepted | n/a |")
    w("|---|---:|---:|---:|---:|")
    for k, title in IMPLS:
        agree = false_ok = false_reject = na = 0
        for c in cases:
            v = verdicts[k].get(c["name"], {"verdict": "n/a"})["verdict"]
            if v == "n/a":
                na += 1
            elif v == c["expect"]:
                agree += 1
            elif v == "ok":
                false_ok += 1
            else:
                false_reject += 1
        w(f"| {title} | {agree}/{len(cases)} | {false_ok} | {false_reject} | {na} |")
    w("")
    w("A note on what matters: every token in these tables that an implementation wrongly "
      "accepts still carries a valid MAC made with the account's signing key, so no "
      "disagreement below lets a third party forge a delivery. They are differences in "
      "strictness (token malleability, claims that are not checked, time-window edges) and, "
      "for qstash-rs, a refusal of every real delivery. An agreeing refusal can still be for "
      "another reason than the expected one: qstash-rs refuses every token that has an `aud` "
      "claim, so its refusals of the table's tokens say little about the check each row "
      "targets.")
    w("")
    recorded = [c for c in cases if c.get("official_ts") or c.get("official_py")]
    if recorded:
        same = {k: sum(verdicts[k].get(c["name"], {}).get("verdict") == c.get(f"official_{k}")
                       for c in recorded) for k in ("ts", "py")}
        w(f"Cross-check: the vector file records what the official receivers answered when it "
          f"was made; this run's TypeScript verdicts match that record on {same['ts']} of "
          f"{len(recorded)} real-token checks, the Python ones on {same['py']} of {len(recorded)}.")
        w("")
    w("### Matrix")
    w("")
    w("`ok` = accepted, `reject` = refused; a verdict that differs from the expected one is in "
      "bold with `!`. The reason column gives the expected refusal as our core's error kind.")
    w("")
    for group, title in groups:
        w(f"#### {title}")
        w("")
        w("| case | expected | reason | " + " | ".join(t for _, t in IMPLS) + " |")
        w("|---|---|---|" + "---|" * len(IMPLS))
        for c in (c for c in cases if c["group"] == group):
            cells = []
            for k, _ in IMPLS:
                v = verdicts[k].get(c["name"], {"verdict": "n/a"})["verdict"]
                if v == "n/a" or v == c["expect"]:
                    cells.append(v)
                else:
                    cells.append(f"**{v} !**")
            name = c["name"].replace("|", "\\|")
            w(f"| {name} | {c['expect']} | {c['reason']} | " + " | ".join(cells) + " |")
        w("")

    w("### Notes on the disagreements")
    w("")
    for k, title in IMPLS:
        rows = []
        for c in cases:
            r = verdicts[k].get(c["name"])
            if r is None or r["verdict"] in ("n/a", c["expect"]):
                continue
            rows.append((c, r))
        na_rows = [c for c in cases if verdicts[k].get(c["name"], {"verdict": "n/a"})["verdict"] == "n/a"]
        if not rows and not na_rows:
            w(f"- **{title}**: agrees with every expected verdict.")
            continue
        w(f"- **{title}** ({checks[k]['implementation']}):")
        seen = {}
        for c, r in rows:
            note = note_for(k, c, r["verdict"])
            key = note or f"(no note) {r['detail']}"
            seen.setdefault(key, []).append(f"{c['name']} ({r['verdict']})")
        for c in na_rows:
            detail = verdicts[k].get(c["name"], {}).get("detail", "no verdict")
            seen.setdefault(f"n/a: {detail}", []).append(c["name"])
        for text, names in seen.items():
            w(f"  - {', '.join(names)}: {text}")
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("bench/compare/run.sh   # prerequisites at the top of the script")
    w("```")
    w("")
    # The load test's section (scripts/load.sh, written by hand) is kept as it is.
    previous = Path(target).read_text() if Path(target).exists() else ""
    kept = previous[previous.find(LOAD_HEADING):] if LOAD_HEADING in previous else ""
    Path(target).write_text("\n".join(lines) + kept)


LOAD_HEADING = "## Under hostile load"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
