"""The Wesnoth loader on the real Debian packages (wesnoth-1.16-data and the campaign packages), and the
WML reading it rests on."""
from pathlib import Path

import pandas as pd
import pytest
import soundfile

from mmwork import datasets, read_table
from mmwork.core.paths import raw_dir
from mmwork.datasets import wml
from mmwork.datasets.wesnoth import package_roots, scan


@pytest.fixture(scope="module")
def scanned():
    kept, skipped, _ = scan(package_roots())
    return pd.DataFrame(kept).set_index("item_id"), pd.DataFrame(skipped)


def test_unit_counts_core_and_campaigns(scanned):
    units, skipped = scanned
    core = units[units["campaign"] == "core"]
    assert len(core) == 277 and len(units) >= 450  # 277 core + 203 campaign units in 1.16.9
    assert set(skipped.loc[skipped["campaign"] == "core", "item_id"]) == {"Fog Clearer", "Wyvern Rider"}
    assert skipped["reason"].str.match(r"no description|no sprite|duplicate id").all()
    assert units.index.is_unique


def test_death_sounds_are_macro_resolved_files(scanned):
    units, _ = scanned
    archer = units.loc["Elvish Archer"]  # die_sound={SOUND_LIST:ELF_HIT}
    assert archer["die_sound"] == "human-hit-[1~4].ogg,elf-hit-[1~2].ogg"
    assert list(archer["audio_files"]) == [f"human-hit-{i}.ogg" for i in range(1, 5)] + ["elf-hit-1.ogg", "elf-hit-2.ogg"]
    assert Path(units.loc["Spearman", "audio"]).name == "human-die-1.ogg"  # {SOUND_LIST:HUMAN_DIE}: the first
    assert units.loc["White Horse", "audio"] == units.loc["Bay Horse", "audio"]  # from its [base_unit]
    with_sound = units["audio"].dropna()
    assert len(with_sound) >= len(units) - 20 and pd.isna(units.loc["Boat", "audio"])  # the boats die silently
    assert not units["die_sound"].dropna().str.contains("{", regex=False).any()
    for path in with_sound.unique():
        assert soundfile.info(path).frames > 0 and Path(path).suffix in (".ogg", ".wav")


def test_descriptions_sprites_and_attributes(scanned):
    units, _ = scanned
    assert (units["text"].str.len() > 10).all()  # the shortest: "King of Wesnoth." (Haldric II)
    assert all(Path(p).is_file() and p.endswith(".png") for p in units["image"])
    archer = units.loc["Elvish Archer"]
    assert (archer["race"], archer["alignment"], archer["cost"], archer["level"]) == ("elf", "neutral", 17, 1)
    assert list(archer["advances_to"]) == ["Elvish Ranger", "Elvish Marksman"]
    assert archer["text"].startswith("As primarily foragers and hunters")
    assert Path(archer["portrait"]).name == "archer.png"
    assert units.loc["Warrioress", "name"] == "Warrior"  # the translation context "female^" dropped
    assert Path(units.loc["Soulless", "image"]).name == "soulless.png"  # through a macro with arguments
    assert Path(units.loc["Black Horse", "image"]).name == "horse-larger.png"  # ~CHAN(...) stripped


def test_wml_strings_conditionals_and_lists():
    text = ('#define ICON\nunits/x.png#enddef\n[unit_type]\n    id=A\n#ifdef __UNUSED__\n    cost=99\n#else\n'
            '    cost=12\n#endif\n    image="{ICON}~RC(magenta>red)"\n    description= _ "one ""two""\n# three" +\n'
            '        _ " four"\n    [attack]\n        name=bite\n        description= _ "x\n[/attack]"\n    [/attack]\n'
            '[/unit_type]\n')
    (unit,) = wml.parse_units(text, {})
    assert unit["cost"] == "12" and wml.strip_image_functions(unit["image"]) == "units/x.png"
    assert unit["description"] == 'one "two"\n# three four'
    assert wml.expand_file_list("a-[3~1].ogg") == ["a-3.ogg", "a-2.ogg", "a-1.ogg"]


def test_get_writes_items_and_skipped(data_root):
    summary = datasets.get("wesnoth")
    assert summary["tables"]["items"] >= 450 and summary["tables"]["skipped"] >= 2
    items = read_table("wesnoth", "items")
    assert {"item_id", "name", "race", "alignment", "cost", "text", "image", "portrait", "audio",
            "campaign"} <= set(items.columns)
    assert items["image"].str.startswith(str(raw_dir("wesnoth"))).all()
    assert "GPL-2+" in datasets.info("wesnoth")["license"]


def test_sprite_decodes_with_transparent_pixels_black(scanned):
    from PIL import Image
    import numpy as np
    from mmwork.features.image import decode_image
    path = scanned[0].loc["Drake Arbiter", "image"]  # an RGBA sprite storing colours under alpha 0
    rgba = np.asarray(Image.open(path).convert("RGBA"))
    hidden = rgba[:, :, 3] == 0
    assert (rgba[hidden][:, :3] != 0).any()
    rgb = decode_image(path)
    assert rgb.shape == (72, 72, 3) and (rgb[hidden] == 0).all()
    assert (rgb[~hidden] == rgba[~hidden][:, :3]).all()
