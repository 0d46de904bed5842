# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """API key and HTTP options of the atlas_* modules."""

    DOCUMENTATION = r"""
options:
  public_key:
    description:
      - Public key of the Atlas API key, sent as the digest user name.
    type: str
    required: true
  private_key:
    description:
      - Private key of the Atlas API key, used only to answer the digest challenge.
    type: str
    required: true
  request_timeout:
    description:
      - Seconds that one HTTP request may take.
    type: float
    default: 30
  validate_certs:
    description:
      - Whether to verify the TLS certificate of the Atlas API at O(base_url).
    type: bool
    default: true
"""
