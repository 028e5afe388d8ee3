fn main() {
    println!("hello from orbit");
}
