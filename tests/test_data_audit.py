"""The OOD leakage audit on the tiny simulated census, and on a hand-built case."""

from hcebench.data.audit import audit_ood
from hcebench.data.census import open_census, read_obs


def test_audit_on_the_simulated_census(tiny_census):
    train = {"uri": str(tiny_census / "2023-05-15")}
    ood = {"uri": str(tiny_census / "2023-12-15")}
    with open_census(train) as census:
        cells = read_obs(census, "is_primary_data == True", ["dataset_id", "donor_id"])
    table, totals = audit_ood(train, ood, cells)
    assert totals["n_ood_datasets"] == len(table) > 0
    # The simulator's re-upload is non-primary and copies training cells: the audit must see both.
    reupload = table[table["non_primary_cells"] > 0]
    assert len(reupload) >= 1 and (reupload["non_primary_cells"] == reupload["n_cells"]).all()
    assert totals["non_primary_cells"] == int(reupload["non_primary_cells"].sum())
    assert set(table.columns) >= {"shared_collection", "n_shared_donors", "title_matches_training"}
    # Auditing against no training cells finds no shared donors.
    _, none = audit_ood(train, ood, cells.iloc[0:0])
    assert none["datasets_with_shared_donors"] == 0 and none["datasets_in_training_collections"] == 0
