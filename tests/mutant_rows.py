"""A toy problem that every concept and every mutation operator applies to: the shared material of the mutant and
downstream-task tests."""

from __future__ import annotations

SIGNATURE = "def clip_sum(values, limit):\n"
DOCSTRING = '    """Sum the values clipped at limit, double it, add the count."""\n'
BODY = '''    total = 0
    count = 0
    for v in values:
        if v > limit:
            total = total + limit
        else:
            total = total + v
        count += 1
    scale = 2
    total = total * scale
    out = total + count
    return out
'''
TESTS = ("assert clip_sum([1, 5, 2], 3) == 15\nassert clip_sum([], 3) == 0\n"
         "assert clip_sum([4, 4], 4) == 18\nassert clip_sum([0, 9], 5) == 12\n")
