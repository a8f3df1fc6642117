"""The sandbox's HTTP API page in Debian's chromium: it draws every route from the app's own
files, with every request outside the machine refused (as on a machine without internet)."""

from __future__ import annotations

from playwright.sync_api import Browser, Route, expect

from tests.support import Product


def test_the_api_page_draws_its_routes_offline(browser: Browser, product: Product) -> None:
    context = browser.new_context()
    outside: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(product.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.goto(product.url + "/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/webhooks/twilio/sms" in paths and "/sandbox/chat" in paths
    assert outside == []
    context.close()
