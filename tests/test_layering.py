"""The arrows of CONTRIBUTING.md ("Layers and arrows"), checked on the
source: which package may import which, and what a recipe module may
import when it is imported (nothing that loads Keras)."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _modules(package):
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path):
    """(imported module, line, at module level?, under `__main__`?) for
    every import statement in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, top, main):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top, main)
                          for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against the package
                    base = ".".join(path.relative_to(ROOT).with_suffix("")
                                    .parts[:-child.level])
                    name = f"{base}.{child.module}" if child.module else base
                else:
                    name = child.module
                found.append((name, child.lineno, top, main))
                found.extend((f"{name}.{a.name}", child.lineno, top, main)
                          for a in child.names)
            elif isinstance(child, ast.If) and "__main__" in ast.unparse(
                    child.test):
                visit(child, top, True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                    ast.Lambda)):
                visit(child, False, main)
            elif isinstance(child, ast.ClassDef):
                visit(child, top, main)
            else:
                visit(child, top, main)

    visit(tree, True, False)
    return found


def _under(name, *prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(package, rule):
    bad = []
    for path in _modules(package):
        for name, line, top, main in _imports(path):
            why = rule(path, name, top, main)
            if why:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports "
                           f"{name}: {why}")
    return bad


def test_nothing_imports_private_keras():
    def rule(path, name, top, main):
        if _under(name, "keras.src"):
            return "private Keras API"
        if _under(name, "keras_tuner.src") and path.name != "kt_compat.py":
            return "private KerasTuner API outside tuning/kt_compat.py"

    bad = []
    for package in ("dlrecipes", "recipes", "tuning", "bench", "tests"):
        bad += _violations(package, rule)
    assert not bad, "\n".join(bad)


def test_the_library_knows_no_recipe():
    """dlrecipes never imports recipes, tuning or bench; only the CLI
    shell reaches them, lazily (inside a function)."""
    def rule(path, name, top, main):
        if not _under(name, "recipes", "tuning", "bench"):
            return None
        if path.name == "cli.py" and not top:
            return None
        return "dlrecipes is the library; arrows point into it"

    bad = _violations("dlrecipes", rule)
    assert not bad, "\n".join(bad)


def test_recipes_import_the_library_only():
    """A recipe imports dlrecipes: never another recipe, the CLI, tuning
    or bench (`python -m recipes.x` may reach the CLI under `__main__`)."""
    def rule(path, name, top, main):
        if main:
            return None
        if _under(name, "tuning", "bench"):
            return "recipes sit below tuning and bench"
        if _under(name, "dlrecipes.cli"):
            return "recipes never import the CLI"
        if _under(name, "recipes") and name not in ("recipes",) and \
                path.name != "__init__.py":
            return "recipes never import each other"

    bad = _violations("recipes", rule)
    assert not bad, "\n".join(bad)


def test_importing_the_recipes_loads_no_backend():
    """Importing every recipe (what `dlrecipes list`, `--help` and a bad
    flag do) loads no Keras and no backend: recipes reach Keras through
    `dlrecipes.lazy` or inside methods."""
    code = ("import sys, recipes; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch',"
            " 'tensorflow_datasets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
