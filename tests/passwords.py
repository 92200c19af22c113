"""Password hashing for the test run: PBKDF2-SHA256 as in production, with few rounds.

Django's default (a million rounds, ~0.2 s of CPU a hash) runs at every user made and every sign-in, some forty
times in the suite. These hashes carry their round count, so the product's own settings check them too (the
web servers some tests start in a process of their own sign these users in).
"""
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
