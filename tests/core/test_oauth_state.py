"""The signed OAuth state: unambiguous MAC input, one spelling per state, a PKCE verifier derived
from it. The end-to-end flows are in tests/accounts/."""

from __future__ import annotations

import base64
import hashlib

import pytest

from core.oauth_state import InvalidState, issue_state, verify_state

SECRET = "unit-test-state-secret"
FAR_FUTURE = 4_000_000_000


def test_a_user_id_with_newlines_cannot_sign_a_state_for_another_user() -> None:
    # Joined with "\n", the fields of ("victim\n<expiry>", E, N) read like ("victim", <expiry>,
    # "E\nN"): the attacker's state, re-split, would pass as the victim's.
    issued = issue_state(SECRET, f"victim\n{FAR_FUTURE}", "google")
    expires, nonce, mac = issued.value.split(".")
    forged = f"{FAR_FUTURE}.{expires}\n{nonce}.{mac}"

    with pytest.raises(InvalidState):
        verify_state(SECRET, forged, "victim", "google")
    assert verify_state(SECRET, issued.value, f"victim\n{FAR_FUTURE}", "google") == issued


@pytest.mark.parametrize(
    "spelling",
    [
        lambda v: "0" + v,  # the same expiry, spelled differently
        lambda v: "\u00b2" + v[1:],  # a digit to str.isdigit, not to int()
        lambda v: v + "=",
        lambda v: v.replace(".", ".x", 1),
        lambda v: "",
    ],
)
def test_only_the_issued_spelling_of_a_state_verifies(spelling) -> None:  # type: ignore[no-untyped-def]
    issued = issue_state(SECRET, "ada", "linear")
    with pytest.raises(InvalidState):
        verify_state(SECRET, spelling(issued.value), "ada", "linear")


def test_the_pkce_verifier_is_derived_secretly_and_the_challenge_is_its_s256() -> None:
    issued = issue_state(SECRET, "ada", "google")
    verified = verify_state(SECRET, issued.value, "ada", "google")

    assert verified.code_verifier == issued.code_verifier
    assert 43 <= len(issued.code_verifier) <= 128  # RFC 7636's bounds
    digest = hashlib.sha256(issued.code_verifier.encode()).digest()
    assert issued.code_challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert issued.code_verifier not in issued.value and issued.code_challenge not in issued.value
    assert issue_state(SECRET, "ada", "google").code_verifier != issued.code_verifier
