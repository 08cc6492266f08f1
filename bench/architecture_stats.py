# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the figures the architecture is judged by: family defaults and branches, lines per
module_utils file, the role's task lines, and the import graphs' layers (module_utils, ezctl).

    python bench/architecture_stats.py
"""
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UTILS = REPO / 'plugins' / 'module_utils'
PREFIX = 'ansible_collections.kubeasz.network.plugins.module_utils.'
# a parameter defaulting to a family string
FAMILY_DEFAULT = re.compile(r"\bfamily\w*\s*=\s*['\"]ipv[46]['\"]")
# a comparison against a family string: one explicit family branch
FAMILY_BRANCH = re.compile(r"(==|!=|\bin\b)\s*\(?\s*['\"]ipv[46]['\"]|['\"]ipv[46]['\"]\s*(==|!=)")


def python_files():
    for root in ('plugins', 'ezctl', 'roles/flannel/files'):
        yield from sorted((REPO / root).rglob('*.py'))


def module_name(path):
    return '.'.join(path.relative_to(UTILS).with_suffix('').parts)


# module_utils' layers: the subpackages
LAYERS = frozenset(p.name for p in UTILS.iterdir() if p.is_dir() and (p / '__init__.py').exists())


def imports_of(path, prefix=PREFIX):
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix[:-1]):
            base = node.module[len(prefix):] if node.module != prefix[:-1] else ''
            if base and base not in LAYERS:
                found.add(base)
            else:  # from the package or one of its layers (base, model, ...) import modules
                found.update('.'.join(filter(None, (base, alias.name))) for alias in node.names)
    return found


def layers(graph):
    """Longest import chain below each module: 0 imports nothing of ours."""
    depth = {}

    def visit(name, stack=()):
        if name in stack:
            raise SystemExit('import cycle: %s' % ' -> '.join(stack + (name,)))
        if name not in depth:
            depth[name] = 1 + max((visit(dep, stack + (name,)) for dep in graph.get(name, ()) if dep in graph),
                                  default=-1)
        return depth[name]

    for name in graph:
        visit(name)
    return depth


def main():
    defaults = branches = 0
    for path in python_files():
        text = path.read_text()
        defaults += len(FAMILY_DEFAULT.findall(text))
        branches += len(FAMILY_BRANCH.findall(text))
    print('family= defaults: %d' % defaults)
    print('family branches (comparisons with a family string): %d' % branches)
    utils = sorted(p for p in UTILS.rglob('*.py') if p.name != '__init__.py')
    print('\nmodule_utils: %d files, %d lines' % (len(utils), sum(len(p.read_text().splitlines()) for p in utils)))
    for path in utils:
        print('  %5d  %s' % (len(path.read_text().splitlines()), path.relative_to(UTILS)))
    tasks = sorted((REPO / 'roles/flannel/tasks').glob('*.yml')) + [REPO / 'roles/flannel/vars/main.yml']
    print('\nrole task files: %d lines' % sum(len(p.read_text().splitlines()) for p in tasks))
    for path in tasks:
        print('  %5d  %s' % (len(path.read_text().splitlines()), path.relative_to(REPO / 'roles/flannel')))
    graph = {module_name(p): imports_of(p) for p in utils}
    depth = layers(graph)
    print('\nimport layers (longest chain of module_utils imports below a file):')
    for level in sorted(set(depth.values())):
        print('  %d: %s' % (level, ' '.join(sorted(n for n, d in depth.items() if d == level))))
    ezctl = {p.stem: imports_of(p, 'ezctl.') for p in sorted((REPO / 'ezctl').glob('*.py'))}
    depth = layers(ezctl)
    print('\nezctl import layers (longest chain of ezctl imports below a file):')
    for level in sorted(set(depth.values())):
        print('  %d: %s' % (level, ' '.join(sorted(n for n, d in depth.items() if d == level))))


if __name__ == '__main__':
    main()
