"""The web page in a real headless browser (Chromium via selenium): answer three questions and
check, after each, that the order on screen is the order the API returns; then undo one."""

from __future__ import annotations

import shutil
import tempfile

import pytest

pytest.importorskip("selenium")
import httpx  # noqa: E402

from pluralign.serve import auth  # noqa: E402
from pluralign.serve.app import create_app  # noqa: E402
from pluralign.serve.model import ServedModel  # noqa: E402
from serve_support import CANDIDATES, LONG, PROMPTS, SHORT, ThreadServer, require, shared_text_run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = require(binary="chromium")
    driver_path = require(binary="chromedriver")
    profile = tempfile.mkdtemp(prefix="pluralign-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_page_rankings_match_the_api_after_each_answer_and_undo(browser, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    served = ServedModel.load(str(shared_text_run(tmp_path_factory)))
    app = create_app(served, f"sqlite:///{tmp_path / 'page.sqlite'}")
    key = auth.create_key(app.state.engine, "acme")
    h = {"Authorization": f"Bearer {key}"}
    pool = {"questions": [{"prompt": PROMPTS[i], "a": SHORT[i], "b": LONG[i]} for i in range(5)],
            "candidates": {"prompt": "Tell me about tea.", "responses": CANDIDATES}}
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, headers=h, timeout=30) as client:
        assert client.put("/v1/pools/demo", json=pool).status_code == 201
        browser.get(f"{server.url}/#key={key}&user=pat&pool=demo")
        wait = WebDriverWait(browser, 60)

        def updates() -> int:
            return int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-updates"))

        def after(action) -> None:  # noqa: ANN001
            before = updates()
            action()
            wait.until(lambda d: updates() > before)

        def on_screen() -> list[int]:
            return [int(li.get_attribute("data-index")) for li in browser.find_elements(By.CSS_SELECTOR, "#ranking li")]

        def from_api() -> list[int]:
            r = client.post("/v1/users/pat/rank", json={"prompt": "Tell me about tea.", "candidates": CANDIDATES})
            return [x["index"] for x in r.json()["ranking"]]

        wait.until(lambda d: updates() >= 1)
        assert browser.find_element(By.ID, "error").text == ""
        assert sorted(on_screen()) == list(range(len(CANDIDATES))) and on_screen() == from_api()
        asked = []
        for i in range(3):
            asked.append(browser.find_element(By.ID, "prompt").text)
            button = browser.find_element(By.ID, "answer-b" if i % 2 == 0 else "answer-a")
            after(button.click)
            assert browser.find_element(By.ID, "error").text == ""
            assert on_screen() == from_api()
        choices = client.get("/v1/users/pat/choices").json()["choices"]
        assert [c["prompt"] for c in choices] == asked
        assert [c["chosen"] for c in choices][0] in LONG and [c["chosen"] for c in choices][1] in SHORT
        after(browser.find_element(By.ID, "undo").click)
        assert client.get("/v1/users/pat").json()["n_choices"] == 2
        assert on_screen() == from_api()
        assert "2 answer(s)" in browser.find_element(By.ID, "count").text
