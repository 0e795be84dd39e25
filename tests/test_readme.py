"""The README's configuration table is generated from the schema and must be current."""
import re

from usrad.config import schema_markdown


def test_readme_config_table_matches_schema(repo):
    text = (repo / "README.md").read_text()
    m = re.search(r"<!-- config-table:start -->\n(.*?)<!-- config-table:end -->", text, re.S)
    assert m, "README lacks the config-table markers"
    assert m.group(1) == schema_markdown(), "regenerate with: python -m usrad.config --readme"
