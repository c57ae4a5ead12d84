"""Korean particles (조사) chosen by how the word before them is read aloud.

A particle's form depends on the last sound of the word it follows: 이/가, 은/는, 을/를,
과/와, 이나/나, 이랑/랑, 아/야 take their first form after a final consonant (받침) and the
second after a vowel; 으로/로 takes 으로 after a final consonant other than ㄹ ("서울로").
Writing "이(가)" leaves the choice to the reader and reads as machine text.

Sentences built from data end words in digits, units and Latin letters, so a word is heard
as a Korean speaker reads it: 80.6% is 팔십 점 육 퍼센트 (a vowel: "80.6%로"), 3 is 삼
(ㅁ: "3으로"), 10 is 십 (ㅂ), 1,000 is 천 (ㄴ), 20,000 is 이만 (ㄴ), "GIS" is 지아이에스,
"Seoul" 서울.  A parenthesis after the word is not read ("서초구(瑞草區)가").
"""

from __future__ import annotations

import re

# Final consonants (종성) of a Hangul syllable, by (code - 0xAC00) % 28; "" = none.
_JONG = ["", "ㄱ", "ㄲ", "ㄳ", "ㄴ", "ㄵ", "ㄶ", "ㄷ", "ㄹ", "ㄺ", "ㄻ", "ㄼ", "ㄽ", "ㄾ", "ㄿ", "ㅀ",
         "ㅁ", "ㅂ", "ㅄ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅊ", "ㅋ", "ㅌ", "ㅍ", "ㅎ"]
# Sino-Korean readings: the last syllable's final consonant.
_DIGIT = {"0": "ㅇ", "1": "ㄹ", "2": "", "3": "ㅁ", "4": "", "5": "", "6": "ㄱ", "7": "ㄹ",
          "8": "ㄹ", "9": ""}                              # 영 일 이 삼 사 오 육 칠 팔 구
_PLACE = {1: "ㅂ", 2: "ㄱ", 3: "ㄴ"}                       # 십 백 천
_GROUP = {1: "ㄴ", 2: "ㄱ", 3: "", 4: "ㅇ"}                # 만 억 조 경
# Units after a number, as read: 퍼센트, 퍼센트포인트, 제곱킬로미터, 킬로그램...
_UNITS = {"%p": "트", "%": "트", "‰": "밀", "km²": "터", "km2": "터", "m²": "터", "m2": "터",
          "km": "터", "cm": "터", "mm": "터", "m": "터", "kg": "램", "g": "램", "ha": "르",
          "℃": "도", "°C": "도", "°": "도", "t": "톤"}
# Letter names (에이, 비, 씨... 엘, 엠, 엔, 알): only L, M, N and R end in a consonant.
_LETTER = {"L": "ㄹ", "M": "ㅁ", "N": "ㄴ", "R": "ㄹ"}
_PAIRS = [("이", "가"), ("은", "는"), ("을", "를"), ("과", "와"), ("으로", "로"), ("으로서", "로서"),
          ("으로써", "로써"), ("이나", "나"), ("이랑", "랑"), ("아", "야"), ("이며", "며"),
          ("이라고", "라고")]
_FORMS = {form: pair for pair in _PAIRS for form in pair}
_NUMBER = re.compile(r"(\d[\d,]*)(?:\.(\d+))?$")
_UNIT = re.compile(r"(?:\d\s*|/)(" + "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True)) + r")$")
_TRAILING = "\"'.,!?…·」』》〉”’ \t"
_BRACKETS = {")": "(", "]": "[", "）": "（"}


def particle(word: str, josa: str) -> str:
    """The form of ``josa`` (either form: "이" or "가", "으로" or "로"...) that follows
    ``word`` when it is read aloud: ``particle("서초구", "이") == "가"``,
    ``particle("80.6%", "으로") == "로"``, ``particle("3", "으로") == "으로"``."""
    pair = _FORMS.get(josa)
    if pair is None:
        raise ValueError(f"unknown particle {josa!r}; known: {', '.join('/'.join(p) for p in _PAIRS)}")
    final = final_sound(word)
    if pair[1].startswith("로"):
        return pair[1] if final in ("", "ㄹ") else pair[0]
    return pair[1] if final == "" else pair[0]


def attach(word: str, josa: str) -> str:
    """``word`` followed by the right form of ``josa``: ``attach("서초구", "이") == "서초구가"``."""
    return word + particle(word, josa)


def final_sound(word: str) -> str:
    """The final consonant of ``word`` as read aloud ("" after a vowel)."""
    text = _unread_tail(word)
    if not text:
        return ""
    last = text[-1]
    if "가" <= last <= "힣":
        return _JONG[(ord(last) - 0xAC00) % 28]
    if "ㄱ" <= last <= "ㅎ":                                # a lone consonant (ㅋ, ㄴ...)
        return last
    unit = _UNIT.search(text)
    if unit:
        return final_sound(_UNITS[unit.group(1)])
    number = _NUMBER.search(text)
    if number:
        return _number_sound(number.group(1).replace(",", ""), number.group(2))
    latin = re.search(r"[A-Za-z]+$", text)
    return _latin_sound(latin.group(0)) if latin else ""


def _unread_tail(word: str) -> str:
    """``word`` without what is not read after it: closing quotes, punctuation, a
    parenthesis (a gloss in hanja or English)."""
    text = word.rstrip(_TRAILING)
    while text and text[-1] in _BRACKETS:
        opening = text.rfind(_BRACKETS[text[-1]])
        if opening <= 0:
            break
        text = text[:opening].rstrip(_TRAILING)
    return text


def _number_sound(whole: str, fraction: str | None) -> str:
    """Sino-Korean reading: decimals are read digit by digit (80.6: ...점 육); a whole number
    ends in its last non-zero digit (21: 이십일) or in the unit of its trailing zeros (10: 십,
    300: 삼백, 20,000: 이만, 10^8: 억)."""
    if fraction:
        return _DIGIT[fraction[-1]]
    digits = whole.lstrip("0")
    if not digits:
        return _DIGIT["0"]
    zeros = len(digits) - len(digits.rstrip("0"))
    if zeros == 0:
        return _DIGIT[digits[-1]]
    return _PLACE[zeros] if zeros < 4 else _GROUP.get(zeros // 4, "")


def _latin_sound(word: str) -> str:
    """Latin letters as Koreans read them: acronyms letter by letter (GIS: ...에스, URL: ...엘);
    words by their ending (Seoul: 서울, Google: 구글, map: 맵, station: 스테이션, bus: 버스) -
    a rule of thumb: English spelling does not always tell."""
    if word.isupper():
        return _LETTER.get(word[-1], "")
    w = word.lower()
    if w.endswith("ng"):
        return "ㅇ"
    if w[-1] in "mnl":
        return {"m": "ㅁ", "n": "ㄴ", "l": "ㄹ"}[w[-1]]
    if w.endswith("le") and len(w) > 2 and w[-3] not in "aeiou":
        return "ㄹ"                                          # table: 테이블, Google: 구글
    if w.endswith("ck"):
        return "ㄱ"                                          # block: 블록
    short = len(w) > 1 and w[-2] in "aeiou" and (len(w) == 2 or w[-3] not in "aeiou")
    if w[-1] in "kpt" and short:
        return {"k": "ㄱ", "p": "ㅂ", "t": "ㅅ"}[w[-1]]        # map: 맵, robot: 로봇 (but seat: 시트)
    return ""
