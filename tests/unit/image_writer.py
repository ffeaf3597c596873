"""Helper process of ``test_image.py``'s atomicity test (not a test module).

``python image_writer.py IMAGE LOG`` loops forever: load the image, add one to a counter kept
in the last 4 bytes of DDF1/EF07 (the photo file), save.  Before each save it logs
``start N`` and after it ``done N``, line-buffered, so the parent that SIGKILLs it knows which
values can be on disk.
"""

from __future__ import annotations

import sys

from healthcard.card import image

DDF1, EF07 = 0xDDF1, 0xEF07


def main(path: str, log: str) -> None:
    sealer = image.Sealer(image.DEMO_PASSPHRASE)
    with open(log, "a", encoding="ascii", buffering=1) as out:
        while True:
            state = image.load(path, sealer)
            photo = state.mf.children[DDF1].children[EF07].data  # type: ignore[union-attr]
            counter = int.from_bytes(photo[-4:], "big") + 1
            photo[-4:] = counter.to_bytes(4, "big")
            photo[-260:-4] = bytes([counter & 0xFF]) * 256  # make every save change many bytes
            out.write(f"start {counter}\n")
            image.save(state, path, sealer)
            out.write(f"done {counter}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
