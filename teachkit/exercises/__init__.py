"""Exercises that end each lesson: a checker runs your code against teachkit's reference and says what is wrong."""
