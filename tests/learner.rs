//! burn-train's Learner drives a model with a private first layer (the `custom_model` example):
//! gradient accumulation and the learning rate reach the secret-shared weights.

#[path = "../examples/custom_model.rs"]
#[allow(dead_code)]
mod custom_model;

#[path = "../examples/label_holder_learner.rs"]
#[allow(dead_code)]
mod label_holder_learner;

#[test]
fn the_learner_trains_a_model_with_a_private_first_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (accuracy, updates) = custom_model::run(4, 2, dir.path());
    println!("accuracy {accuracy:.1}%, secure updates {updates}");
    assert!(accuracy > 90.0, "test accuracy {accuracy}%");
    // 455 training samples in batches of 32 are 15 batches per epoch; accumulating two
    // batches per optimiser step, the Learner steps ⌈15/2⌉ = 8 times per epoch (the last step
    // takes the odd batch), and each step is exactly one secure update.
    assert_eq!(updates, 4 * 8, "one secure update per optimiser step");
}

/// The same Learner on a server without labels: they stay at a label holder, which owns the top
/// layer and the loss; the server trains on bare ids and the label holder alone learns the
/// test AUC.
#[test]
fn the_learner_trains_a_server_whose_labels_are_at_a_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (auc, reports) = label_holder_learner::run(4, dir.path());
    println!("test AUC at the label holder {auc:.4}");
    assert!(auc > 0.95, "test AUC {auc}");
    assert_eq!(reports, 0, "the label holder reports nothing by default");
}
