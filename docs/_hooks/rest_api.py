"""MkDocs hook: the REST API reference, written at build time from the app's own OpenAPI schema.

Adds two generated pages to the site: rest-api.md (Markdown, in the nav) and openapi.json (the schema itself,
as `GET /openapi.json` of a running server gives it). No server is started and no model is loaded.
"""
from __future__ import annotations

import json
import tempfile

from mkdocs.structure.files import File

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_schema() -> dict:
    from facelab.server import create_app
    from facelab.server.settings import Settings

    with tempfile.TemporaryDirectory() as data:
        return create_app(Settings(data_dir=data)).openapi()


def type_of(schema: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(type_of(s) for s in schema["anyOf"] if s.get("type") != "null")
    if schema.get("type") == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " / ".join(f"`{v}`" for v in schema["enum"])
    return schema.get("type", "any")


def limits_of(schema: dict) -> str:
    parts = []
    for s in [schema, *schema.get("anyOf", [])]:
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
            if key in s:
                parts.append(f"{sign} {s[key]}")
        if "pattern" in s:
            parts.append(f"`{s['pattern']}`")
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return ", ".join(parts)


def body_of(schema: dict) -> str:
    """An inline object as its fields (`image` file, required), a named schema as a link."""
    props = schema.get("properties")
    if not props:
        return type_of(schema)
    required = set(schema.get("required", []))
    fields = []
    for name, s in props.items():
        kind = "file" if s.get("format") == "binary" else s.get("description") or type_of(s)
        fields.append(f"`{name}` ({kind}{', required' if name in required else ''})")
    return ", ".join(fields)


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def operation_md(path: str, method: str, op: dict) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | limits, default | description |", "|---|---|---|---|---|---|"]
        for p in params:
            s = p.get("schema", {})
            lines.append(f"| `{p['name']}` | {p['in']} | {cell(type_of(s))} | {'yes' if p.get('required') else 'no'} "
                         f"| {cell(limits_of(s))} | {cell(p.get('description', s.get('description', '')))} |")
        lines.append("")
    body = op.get("requestBody", {}).get("content", {})
    for ctype, media in body.items():
        lines += [f"Request body (`{ctype}`): {body_of(media.get('schema', {}))}", ""]
    responses = op.get("responses", {})
    if responses:
        shown = []
        for code, r in responses.items():
            schema = r.get("content", {}).get("application/json", {}).get("schema")
            shown.append(f"{code} {type_of(schema) if schema and code.startswith('2') else r.get('description', '')}")
        lines += ["Responses: " + "; ".join(shown) + ".", ""]
    return lines


def schema_md(name: str, schema: dict) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    props = schema.get("properties", {})
    if props:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field, s in props.items():
            lines.append(f"| `{field}` | {cell(type_of(s))} | {'yes' if field in required else 'no'} "
                         f"| {cell(s.get('description', ''))} |")
        lines.append("")
    return lines


def reference_md(spec: dict) -> str:
    info = spec["info"]
    lines = ["# REST API reference", "",
             f"Generated at build time from the OpenAPI schema of facelab {info['version']}'s app "
             "(`facelab.server.create_app().openapi()`); the schema itself is [openapi.json](openapi.json), and a "
             "running server serves it with Swagger UI at `/docs`. How to start the server, keys, limits and "
             "examples: [Web page and REST API](web.md).", "", " ".join(info.get("description", "").split()), ""]
    by_tag: dict[str, list] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((path, method, item[method]))
    for tag, ops in by_tag.items():
        lines += [f"## {tag.capitalize()}", ""]
        for path, method, op in ops:
            lines += operation_md(path, method, op)
    lines += ["## Schemas", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        lines += schema_md(name, schema)
    return "\n".join(lines).rstrip() + "\n"


def on_files(files, config):
    spec = openapi_schema()
    files.append(File.generated(config, "rest-api.md", content=reference_md(spec)))
    files.append(File.generated(config, "openapi.json", content=json.dumps(spec, indent=2)))
    return files
