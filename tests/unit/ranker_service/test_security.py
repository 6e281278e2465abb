from ranker_service.security import key_matches


def test_key_matches_any_configured_key_and_nothing_else():
    keys = ["alpha-key", "beta-key"]
    assert key_matches("alpha-key", keys) and key_matches("beta-key", keys)
    assert not key_matches("alpha-ke", keys) and not key_matches("", keys) and not key_matches("x", [])
