"""Accessibility audits with axe-core (the axe-selenium-python package bundles it): a page passes
when axe finds nothing on it, of any impact (critical, serious, moderate or minor)."""
from axe_selenium_python import Axe


def audit(driver, what, context=None):
    """Runs axe on the page (or the `context` selector); raises listing every finding."""
    axe = Axe(driver)
    axe.inject()
    results = axe.run(context=context, options={"resultTypes": ["violations"]})
    findings = [v for v in results["violations"] if v.get("impact") in ("serious", "critical", "moderate", "minor")]
    if findings:
        lines = []
        for violation in findings:
            targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
            lines.append(f"{violation['impact']}: {violation['id']}: {violation['help']} ({targets})")
        raise AssertionError(f"axe on {what}:\n" + "\n".join(lines))
    return results
