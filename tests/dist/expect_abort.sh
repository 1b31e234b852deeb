#!/bin/sh
# expect_abort.sh MESSAGE COMMAND...: runs COMMAND and succeeds when it exits non-zero and its
# output contains MESSAGE (ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit code).
msg="$1"
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 0 ]; then
  echo "expect_abort.sh: FAILED: the command exited 0, expected a non-zero exit"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -qF -- "$msg"; then
  echo "expect_abort.sh: FAILED: the output lacks: $msg"
  exit 1
fi
echo "expect_abort.sh: ok: exit code $rc and the message"
