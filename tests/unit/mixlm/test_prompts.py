from mixlm import prompts


def test_teacher_prompt_is_the_papers_template():
    p = prompts.teacher_prompt("data analyst", "Payments Data Analyst\nBuild dashboards.")
    assert p == (
        "[SYSTEM] : Output only 'Yes' or 'No' based on how well the job matches the query; no extra text.\n"
        "[QUERY] : data analyst\n[CANDIDATE] : Payments Data Analyst\nBuild dashboards.\nyes or no ?"
    )


def test_prefix_plus_item_plus_suffix_is_the_teacher_prompt():
    q, item = "nurse", "ICU nurse"
    assert prompts.ranker_prefix(q) + item + prompts.ITEM_SUFFIX == prompts.teacher_prompt(q, item)


def test_user_context_goes_into_the_shared_prefix():
    assert "[USER] : lives in Oslo\n[QUERY]" in prompts.ranker_prefix("nurse", "lives in Oslo")
    assert "[USER]" not in prompts.ranker_prefix("nurse", "  ")


def test_encoder_input_and_item_text():
    assert prompts.encoder_input("x") == "Item information: x"
    assert prompts.ENCODER_SUFFIX == '\nThis job in one word: "'
    assert prompts.item_text("Nurse", "Cares.", {"location": "Oslo", "company": ""}) == "Nurse (location: Oslo)\nCares."
    assert prompts.item_text("", "Only text") == "Only text"
