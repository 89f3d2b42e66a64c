"""Link coverage in HTML mode: link-only lines and heading-over-links modules leave the body in any language."""

from __future__ import annotations

from lxml.html import fromstring

from services.clean.html import extract_html
from services.clean.linktext import link_coverage, page_links

STORY = [
    "Der Stadtrat hat am Montag beschlossen, das alte Straßenbahndepot zu schließen und auf dem Gelände einen "
    "öffentlichen Park anzulegen, nachdem jahrelang über die Zukunft des Grundstücks am Fluss gestritten wurde.",
    "Die ersten Rasenflächen und ein Spielplatz sollen im nächsten Sommer fertig sein, die restaurierte Halle des "
    "Depots wird bis zum Ende des folgenden Jahres zu einer überdachten Markthalle umgebaut.",
    "Anwohner, die für den Park gekämpft hatten, begrüßten die Entscheidung, während einige Händler sagten, sie "
    "hätten Wohnungen bevorzugt, weil im Viertel viel mehr Wohnraum gebraucht werde als zusätzliche Grünflächen.",
    "Im Haushalt sind zwölf Millionen Euro für die Arbeiten vorgesehen, der größte Teil davon für die Sanierung "
    "des Bodens, der nach mehr als einem Jahrhundert Wartung mit Öl und Schwermetallen belastet ist.",
]


def page(article_inner: str) -> str:
    return f"""<!DOCTYPE html><html lang="de"><head><meta charset="utf-8"><title>Depot wird Park</title></head>
<body><article><h1>Depot wird Park</h1>{article_inner}</article>
<footer><a href="/impressum">Impressum</a></footer></body></html>"""


def story_html() -> str:
    return "".join(f"<p>{paragraph}</p>" for paragraph in STORY)


def test_a_linked_headline_behind_a_label_is_covered_and_prose_with_an_inline_link_is_not() -> None:
    tree = fromstring(
        '<div><p><a href="/x">Bridge closed for repairs after flood</a></p>'
        '<p>The mayor, <a href="/mayor">Ana Ruiz</a>, said the park would open next year after the soil is'
        " cleaned.</p>"
        '<p><a href="#section-2">Why the depot closed</a></p></div>'
    )
    links = page_links(tree)

    assert link_coverage("Bridge closed for repairs after flood", links) == 1.0
    # Coverage counts word characters: 32 of the 40 are the linked headline, 8 are the "Read more" label.
    assert link_coverage("Read more: Bridge closed for repairs after flood.", links) == 32 / 40
    prose = "The mayor, Ana Ruiz, said the park would open next year after the soil is cleaned."
    assert link_coverage(prose, links) < 0.2
    # A table of contents points into the article: its headings are part of the story, not links away from it.
    assert link_coverage("Why the depot closed", links) == 0.0


def test_related_module_in_thai_after_the_story_is_cut_with_what_follows() -> None:
    related = (
        "<h3>เรื่องที่เกี่ยวข้อง</h3>"
        '<p><a href="/news/1">ตำรวจเร่งหาเบาะแสคดีใหม่ในจังหวัดนครพนม</a></p>'
        '<p><a href="/news/2">ผู้ลี้ภัยหายจากที่พักสิบสองวันแล้ว</a></p>'
        "<p>โอนเงิน พร้อมเพย์ 0993000060423</p>"
    )
    result = extract_html(page(story_html() + related))

    assert result.paragraphs == STORY


def test_link_only_account_lines_after_the_story_are_dropped() -> None:
    # The arrows sit outside the links, so the extractor's own link-density pruning keeps these lines.
    tail = '<p>＞ <a href="/register">新規会員登録</a></p><p>＞ <a href="/login">ログイン</a></p>'
    result = extract_html(page(story_html() + tail))

    assert result.paragraphs == STORY


def test_links_between_paragraphs_of_the_story_are_kept() -> None:
    # A list of linked titles inside the story is part of what the writer wrote (a reading list, a ranking).
    reading_list = (
        "<p>Zum Weiterlesen empfiehlt die Autorin zwei Bücher:</p>"
        '<ul><li><a href="/book/1">Die Stadt und der Fluss</a> von Jana Berg</li>'
        '<li><a href="/book/2">Parks in Europa</a></li></ul>'
    )
    before = "".join(f"<p>{paragraph}</p>" for paragraph in STORY[:2])
    after = "".join(f"<p>{paragraph}</p>" for paragraph in STORY[2:])
    result = extract_html(page(before + reading_list + after))

    assert "- Parks in Europa" in result.paragraphs
    assert result.paragraphs[-2:] == STORY[2:]


def test_bracketed_button_and_desk_credit_lines_are_dropped_but_a_bracketed_lede_is_kept() -> None:
    lede = "【新华社讯】 市议会周一投票决定关闭旧电车车库，并将该地改建为公共公园，结束了长达十年的争论。"
    body = f"<p>{lede}</p>" + story_html() + "<p>【纠错】</p><p>[责任编辑：张三]</p>"
    result = extract_html(page(body))

    assert result.paragraphs == [lede, *STORY]
