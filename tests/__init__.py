"""
Loopy's tests (trial).  ``test_e2e_*`` modules start real processes and need
root; the rest are deterministic unit tests.
"""
