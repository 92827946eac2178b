fn main() {
    use kube::CustomResourceExt;
    print!("{}", serde_yaml::to_string(&berth_operator::MicroService::crd()).unwrap());
}
