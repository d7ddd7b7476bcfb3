"""
Programs the end-to-end tests run as real processes (not tests themselves).
"""
